"""northmigrate: queue-driven data migration on AWS that proves nothing was lost."""

from northmigrate.plugin import Migration, MigrationContext, PermanentError, SetupResult

__version__ = "0.1.0"
__all__ = ["Migration", "MigrationContext", "PermanentError", "SetupResult", "__version__"]
