"""Example migrations shipped with northmigrate."""
