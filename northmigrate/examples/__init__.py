"""Example migrations shipped with northmigrate: plugins, written as a user writes one.
May import the plugin API, ``aws`` and the base modules, nothing else."""
