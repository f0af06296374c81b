"""The command-line interface: a thin typer layer over the library (parse, call, render).
May import every room; no room imports it. Only here do typer and rich appear."""
