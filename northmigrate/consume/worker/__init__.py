"""The local worker: drain the main queue into the new service, concurrently, losing nothing.

The parts, one job each: :mod:`.receiver` (long polls, tap pacing), :mod:`.ledger` (what
is held, the newest receipt handle, heartbeat registration), :mod:`.dispatcher` (the pool,
FIFO groups, hand-backs of unstarted messages), :mod:`.acknowledger` (deletes, backoff
visibility, hand-backs, in batches) and :mod:`.runner` (the ``Worker`` that wires them and
handles stop and grace).
"""

from northmigrate.consume.worker.report import WorkerReport
from northmigrate.consume.worker.runner import PREFETCH, Worker, receivers_for

__all__ = ["PREFETCH", "Worker", "WorkerReport", "receivers_for"]
