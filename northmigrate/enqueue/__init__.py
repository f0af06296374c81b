"""Records sent: the enqueue run (``job``: read, check, send each eligible record once) and the
batch sender. May import: ``records``, ``sources``, ``aws``, ``plugin`` and the base modules.

The face re-exports the run: ``northmigrate.enqueue.run(...)``.
"""

from northmigrate.enqueue.job import Enqueue, EnqueueReport, new_run_id, run

__all__ = ["Enqueue", "EnqueueReport", "new_run_id", "run"]
