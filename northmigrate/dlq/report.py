"""What a redrive did (``dlq redrive --output json``), whichever way it moved."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from northmigrate.dlq.letters import hidden_note
from northmigrate.errors import NorthmigrateError

MODE_CLIENT = "client"
MODE_NATIVE = "native"

Progress = Callable[["RedriveReport"], None]


@dataclass
class RedriveReport:
    """``matched`` = messages that passed the filters (and ``--max``); of those ``moved``
    reached the destination and left the DLQ, ``failed`` could not be sent and stay in the
    DLQ. ``skipped`` did not match. ``delete_failed`` were sent but their delete failed:
    they are in both queues (counted in ``moved``)."""

    source: str
    destination: str
    mode: str = MODE_CLIENT
    dry_run: bool = False
    matched: int = 0
    moved: int = 0
    skipped: int = 0
    failed: int = 0
    delete_failed: int = 0
    read: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    ended: str = ""  # empty | max | in_flight_limit | stale | stop | error | native status
    interrupted: bool = False
    duration_s: float = 0.0
    task_status: str | None = None  # native: the move task's last status
    error: NorthmigrateError | None = None
    in_flight: int = 0  # dead letters hidden when the run started: not seen by it
    back_within_s: int | None = None  # when those come back, at most
    # --processes N: one entry per process (its share, its counts, how it ended)
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def died(self) -> list[dict[str, Any]]:
        """The processes of a --processes run that ended without a report (killed)."""
        return [p for p in self.processes if p.get("died")]

    @property
    def hidden_note(self) -> str | None:
        return hidden_note(self.in_flight, self.back_within_s)

    def snapshot(self) -> RedriveReport:
        return replace(
            self,
            failure_reasons=Counter(self.failure_reasons),
            processes=[dict(p) for p in self.processes],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "matched": self.matched,
            "moved": self.moved,
            "skipped": self.skipped,
            "failed": self.failed,
            "dry_run": self.dry_run,
            "mode": self.mode,
            "delete_failed": self.delete_failed,
            "read": self.read,
            "failure_reasons": [
                {"reason": r, "count": n} for r, n in self.failure_reasons.most_common(20)
            ],
            "ended": self.ended,
            "interrupted": self.interrupted,
            "duration_s": round(self.duration_s, 3),
            "task_status": self.task_status,
            "in_flight": self.in_flight,
            "in_flight_back_within_s": self.back_within_s if self.in_flight else None,
        } | ({"processes": self.processes} if self.processes else {})
