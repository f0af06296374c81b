"""The guard: a circuit breaker that stops the burn when the new service is down.

Every consumer (a local worker, each Lambda instance) keeps a window of the last
``guard.window`` records it tried, each with the kind of its failure
(:mod:`northmigrate.failures`). A try *failed* when the plugin's handler raised: a retry,
or a dead letter of kind ``permanent`` or ``exhausted`` (a record that does not validate,
or a message that is not an envelope, says nothing about the new service and is not
counted). A throttled try is not a try: it is not in the window (throttling slows the
consumers down, northmigrate.consume.throttle). Once ``guard.min_records`` were tried:

- at least ``guard.failure_share`` of the window met an **outage**: the guard trips;
- record errors never trip it by default, however clustered (a sorted source puts every
  record hit by one bug side by side); with ``guard.stop_on_record_errors`` it trips when
  the *distinct records* with a record error are at least that share of the window.

It trips once: the consumer closes the tap for every consumer (the queue's tags for local
workers, the event source mapping for Lambda) with who closed it, when and why
(``"outage: 62 of the last 100 records failed: TargetUnavailable (58), …"``). The records
not yet tried stay in the main queue; the probe (``guard.reopen = "probe"``) or ``tap open``
resumes.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from northmigrate.config import GuardSettings
from northmigrate.consume.processing import KIND_EXHAUSTED, KIND_PERMANENT, Outcome, Status
from northmigrate.consume.throttle import Throttle
from northmigrate.failures import OUTAGE, RECORD, THROTTLED, classify
from northmigrate.records.envelope import iso, utc_now

REASONS_NAMED = 3


@dataclass(frozen=True)
class Trip:
    """Why and when the guard tripped (``kind``: outage or record), and which consumer."""

    by: str
    at: str
    failed: int
    window: int
    classes: Counter[str] = field(default_factory=Counter)
    kind: str = OUTAGE
    note: str | None = None  # a reason of its own (throttled at the floor for too long)

    @property
    def reason(self) -> str:
        if self.note:
            return f"{self.kind}: {self.note}"
        named = ", ".join(f"{name} ({n})" for name, n in self.classes.most_common(REASONS_NAMED))
        text = f"{self.kind}: {self.failed} of the last {self.window} records failed: {named}"
        return text.rstrip(": ")


@dataclass(frozen=True)
class Failure:
    """One failed try in the window: its kind, its record and its error's class."""

    kind: str
    record_id: str | None
    error_class: str


def failure(outcome: Outcome) -> Failure | None:
    """The handler's failure on this try (a sign of the new service's health), if any."""
    handler_kinds = (None, KIND_PERMANENT, KIND_EXHAUSTED)
    if outcome.retried:
        failed = outcome.error is not None and outcome.kind in handler_kinds
    else:
        failed = outcome.status is Status.DEAD_LETTERED and outcome.kind in handler_kinds[1:]
    if not failed:
        return None
    kind = outcome.error_kind
    if kind is None:
        kind = classify(outcome.error) if outcome.error is not None else RECORD
    error_class = (outcome.reason or "unknown").split(":", 1)[0] or "unknown"
    return Failure(kind, outcome.record_id, error_class)


class Guard:
    """Counts outcomes; calls ``on_trip`` once, from the thread that saw the tripping one."""

    def __init__(
        self,
        settings: GuardSettings,
        *,
        by: str,
        on_trip: Callable[[Trip], None],
        clock: Callable[[], datetime] = utc_now,
        throttle: Throttle | None = None,
    ) -> None:
        self.settings = settings
        self.throttle = throttle  # lowers and raises the tap's limit under throttling
        self.by = by
        self.on_trip = on_trip
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[Failure | None] = deque(maxlen=settings.window)
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
        failed = failure(outcome)
        persistent = self.throttle is not None and self.throttle.record(outcome)
        if failed is not None and failed.kind == THROTTLED and not persistent:
            return None  # not a try: throttling slows the consumers down, it does not stop them
        with self._lock:
            if self.trip is not None:
                return None
            if persistent:
                seconds = self.settings.throttle_outage_s
                note = f"throttled at the lowest limit for {seconds:.0f} s"
                self.trip = Trip(self.by, iso(self._clock()), 0, 0, Counter(), OUTAGE, note)
            else:
                self._window.append(failed)
                self.trip = self._tripped()
            trip = self.trip
        if trip is not None:
            self.on_trip(trip)
        return trip

    def _tripped(self) -> Trip | None:
        tried = len(self._window)
        if tried < self.settings.min_records:
            return None
        share = self.settings.failure_share * tried
        outages = [f for f in self._window if f is not None and f.kind == OUTAGE]
        if outages and len(outages) >= share:
            return self._trip(OUTAGE, len(outages), tried, outages)
        if self.settings.stop_on_record_errors:
            errors = [f for f in self._window if f is not None and f.kind == RECORD]
            distinct = {f.record_id for f in errors}
            if errors and len(distinct) >= share:
                return self._trip(RECORD, len(distinct), tried, errors)
        return None

    def _trip(self, kind: str, failed: int, tried: int, failures: list[Failure]) -> Trip:
        classes = Counter(f.error_class for f in failures)
        return Trip(self.by, iso(self._clock()), failed, tried, classes, kind)
