from northmigrate.cli.app import main

main()
