"""What a worker run did: the counts behind ``worker --output json`` and its progress line."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from northmigrate.aws.sqs.queue import Depth
from northmigrate.consume.processing import Outcome, Status
from northmigrate.errors import NorthmigrateError

REASONS_SHOWN = 20


@dataclass
class WorkerReport:
    """What a run did. ``received`` = ``succeeded + retried + dead_lettered + released +
    abandoned`` once the run is over. Thread-safe through :meth:`count` and :meth:`add`;
    ``received`` is kept by the worker's ledger, with its reservations."""

    queue: str = ""
    concurrency: int = 0
    received: int = 0
    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0  # received, never started, handed back (visibility 0)
    abandoned: int = 0  # still running when the grace period ran out: SQS delivers it again
    delete_failed: int = 0  # migrated, but the delete failed: SQS delivers it again
    duration_s: float = 0.0
    stopped: str = ""  # empty | max_messages | signal | error
    depth: Depth | None = None
    reasons: Counter[str] = field(default_factory=Counter)  # dead letters
    retry_reasons: Counter[str] = field(default_factory=Counter)
    error: NorthmigrateError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def processed(self) -> int:
        return self.succeeded + self.retried + self.dead_lettered

    @property
    def rate(self) -> float:
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0

    def count(self, outcome: Outcome) -> None:
        """One processed record."""
        with self.lock:
            if outcome.status is Status.SUCCEEDED:
                self.succeeded += 1
            elif outcome.status is Status.DEAD_LETTERED:
                self.dead_lettered += 1
                self.reasons[outcome.reason or "unknown"] += 1
            else:
                self.retried += 1
                self.retry_reasons[outcome.reason or "unknown"] += 1

    def add(self, *, released: int = 0, delete_failed: int = 0) -> None:
        with self.lock:
            self.released += released
            self.delete_failed += delete_failed

    def snapshot(self) -> WorkerReport:
        with self.lock:
            return replace(
                self,
                reasons=Counter(self.reasons),
                retry_reasons=Counter(self.retry_reasons),
                lock=threading.Lock(),
            )

    def to_dict(self) -> dict[str, Any]:
        def listed(counts: Counter[str]) -> list[dict[str, Any]]:
            return [{"reason": r, "count": n} for r, n in counts.most_common(REASONS_SHOWN)]

        return {
            "queue": self.queue,
            "concurrency": self.concurrency,
            "received": self.received,
            "succeeded": self.succeeded,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "released": self.released,
            "abandoned": self.abandoned,
            "delete_failed": self.delete_failed,
            "duration_s": round(self.duration_s, 3),
            "rate_per_s": round(self.rate, 2),
            "stopped": self.stopped,
            "reasons": listed(self.reasons),
            "retry_reasons": listed(self.retry_reasons),
        }
