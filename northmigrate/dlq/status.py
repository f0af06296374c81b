"""Moved to :mod:`northmigrate.status` (status is of the whole migration, not of the DLQ).

Kept only for ``cli/cmd_records.py`` (``enqueue`` writes the last run) until that module
imports from :mod:`northmigrate.status`; nothing else may import it.
"""

from northmigrate.status import LastRun, write_last_run

__all__ = ["LastRun", "write_last_run"]
