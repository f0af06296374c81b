"""The guard: a circuit breaker that stops the burn when the new service is down.

Every consumer (a local worker, each Lambda instance) keeps a window of the last
``guard.window`` records it tried. A record *failed* when the plugin's handler raised: a
retry, or a dead letter of kind ``permanent`` or ``exhausted`` (a record that does not
validate, or a message that is not an envelope, says nothing about the new service and is
not counted). Once ``guard.min_records`` were tried and at least ``guard.failure_share`` of
the window failed, the guard trips, once: the consumer closes the tap for every consumer
(the queue's tags for local workers, the event source mapping for Lambda) with who closed
it, when and why (``"62 of the last 100 records failed: TargetUnavailable (58), …"``). The
records not yet tried stay in the main queue; ``tap open`` resumes.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from northmigrate.config import GuardSettings
from northmigrate.consume.processing import KIND_EXHAUSTED, KIND_PERMANENT, Outcome, Status
from northmigrate.records.envelope import iso, utc_now

REASONS_NAMED = 3


@dataclass(frozen=True)
class Trip:
    """Why and when the guard tripped, and which consumer it was."""

    by: str
    at: str
    failed: int
    window: int
    classes: Counter[str] = field(default_factory=Counter)

    @property
    def reason(self) -> str:
        named = ", ".join(f"{name} ({n})" for name, n in self.classes.most_common(REASONS_NAMED))
        return f"{self.failed} of the last {self.window} records failed: {named}".rstrip(": ")


def failed(outcome: Outcome) -> bool:
    """Did the plugin's handler fail on this record (a sign of the new service's health)?"""
    handler_kinds = (None, KIND_PERMANENT, KIND_EXHAUSTED)
    if outcome.retried:
        return outcome.error is not None and outcome.kind in handler_kinds
    return outcome.status is Status.DEAD_LETTERED and outcome.kind in handler_kinds[1:]


class Guard:
    """Counts outcomes; calls ``on_trip`` once, from the thread that saw the tripping one."""

    def __init__(
        self,
        settings: GuardSettings,
        *,
        by: str,
        on_trip: Callable[[Trip], None],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.by = by
        self.on_trip = on_trip
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[str | None] = deque(maxlen=settings.window)
        self.trip: Trip | None = None

    def reset(self) -> None:
        """Start again with an empty window (the tap was opened after a trip)."""
        with self._lock:
            self._window.clear()
            self.trip = None

    def record(self, outcome: Outcome) -> Trip | None:
        """Count one outcome; the trip when this one tripped the guard."""
        if not self.settings.enabled:
            return None
        error_class = None
        if failed(outcome):
            error_class = (outcome.reason or "unknown").split(":", 1)[0] or "unknown"
        with self._lock:
            if self.trip is not None:
                return None
            self._window.append(error_class)
            tried = len(self._window)
            classes = Counter(c for c in self._window if c is not None)
            failures = sum(classes.values())
            if tried < self.settings.min_records:
                return None
            if failures < self.settings.failure_share * tried:
                return None
            self.trip = Trip(self.by, iso(self._clock()), failures, tried, classes)
            trip = self.trip
        self.on_trip(trip)
        return trip
