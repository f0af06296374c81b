"""The probe: while the guard holds the tap closed after an outage, is the target back?

``guard.reopen = "probe"`` (the default): every ``guard.probe_interval_s`` a consumer
asks once. With the plugin's ``probe(ctx)`` it is called (it returns: the target answers;
it raises: not yet); without one, one record of the main queue is tried, with
``probe=True`` so that an outage again is not charged a try (the record goes back
unchanged, :mod:`northmigrate.consume.processing`). Any other answer (migrated, a record error, a
throttle) says the target is there. An empty queue has nothing to burn: the tap opens (a
queue whose records are all delayed or in flight waits for the next probe).

When the target answers, the tap opens by itself (``Tap.open(by=guard …)``, the tags say
how long it was closed) and the guard starts a new window. A tap a person closed (its
``closed_by`` does not start with ``guard``) is never opened by a probe, and neither is
one with ``guard.reopen = "manual"``: a person runs ``tap open``.

The local worker probes from its receiver; on Lambda, the stack's schedule invokes the
function with :data:`PROBE_EVENT` (``northmigrate.consume.lambda_handler``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from northmigrate.aws.sqs.batch import change_visibility_batch, delete_batch
from northmigrate.aws.sqs.message import InMessage
from northmigrate.aws.sqs.queue import depth
from northmigrate.aws.sqs.receive import receive
from northmigrate.config import GuardSettings
from northmigrate.consume.processing import KIND_INVALID, KIND_UNREADABLE, Outcome, Processor
from northmigrate.consume.tap import Tap, TapState
from northmigrate.errors import NorthmigrateError
from northmigrate.failures import OUTAGE
from northmigrate.plugin import MigrationContext
from northmigrate.records.envelope import utc_now

log = logging.getLogger("northmigrate.guard")
PROBE_EVENT = {"northmigrate": "probe"}  # what the stack's schedule sends the function
PROBE_RECORDS = 5  # records a probe may try to reach the handler once


def is_probe_event(event: Any) -> bool:
    return isinstance(event, dict) and event.get("northmigrate") == "probe"


def closed_for(state: TapState, now: datetime) -> str:
    """How long the tap has been closed, in words (``"3 min 12 s"``)."""
    try:
        since = datetime.fromisoformat((state.closed_at or "").replace("Z", "+00:00"))
    except ValueError:
        return "an unknown time"
    seconds = max(0, round((now - since).total_seconds()))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


class Prober:
    """Asks whether the target is back, and opens a guard-closed tap when it is."""

    def __init__(
        self,
        processor: Processor,
        tap: Tap,
        *,
        by: str,
        interval_s: float,
        on_outcome: Callable[[Outcome], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.processor = processor
        self.tap = tap
        self.by = by
        self.interval_s = interval_s
        self.on_outcome = on_outcome  # the probed record's outcome, counted and told
        self._clock = clock
        self._now = now
        self._last: float | None = None

    def rearm(self) -> None:
        """The next probe one interval from now (the tap just closed)."""
        self._last = self._clock()

    def due_in(self) -> float:
        """Seconds until the next probe (0: now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval_s - self._clock())

    def probe(self) -> bool:
        """One probe when due; True when the tap is open (now, or it was already)."""
        if self.due_in() > 0:
            return False
        self._last = self._clock()
        state = self.tap.state()
        if state.open:
            return True
        if not state.closed_by_guard:
            return False  # a person closed it: a person opens it
        if not self._answers():
            log.info("the probe found the target still down; again in %.0f s", self.interval_s)
            return False
        state = self.tap.state()  # a person may have closed it meanwhile
        if not state.closed_by_guard:
            return state.open
        note = f"the probe succeeded after {closed_for(state, self._now())} closed"
        log.warning("the guard opens the tap: %s", note)
        try:
            self.tap.open(by=self.by, note=note)
        except NorthmigrateError as exc:  # the next probe tries again
            log.error("the guard could not open the tap: %s", exc)
            return False
        return True

    def _answers(self) -> bool:
        migration = self.processor.migration
        if migration.probe is not None:
            ctx = MigrationContext(options=self.processor.options, aws=self.processor.clients)
            try:
                migration.probe(ctx)
            except Exception as exc:  # the plugin's health check: any failure is "not yet"
                log.info("the plugin's probe failed: %s", type(exc).__name__)
                return False
            return True
        return self._try_one()

    def _try_one(self) -> bool:
        """Try records until one reaches the plugin's handler (one that does not validate
        says nothing of the target), at most ``PROBE_RECORDS``."""
        url = self.tap.queues.main_url()
        for _ in range(PROBE_RECORDS):
            try:
                messages = receive(self.processor.sqs, url, max_number=1, wait_s=1)
            except NorthmigrateError as exc:
                log.warning("the probe could not receive a record: %s", exc)
                return False
            if not messages:  # none to try now: open only when nothing waits at all
                return self._empty(url)
            outcome = self._one(url, messages[0])
            if outcome.kind not in (KIND_INVALID, KIND_UNREADABLE):
                return outcome.error_kind != OUTAGE
        return False

    def _empty(self, url: str) -> bool:
        """The queue holds nothing (visible, in flight or delayed): nothing can be burnt, so
        the tap may open; records still delayed or in flight wait for the next probe."""
        try:
            return depth(self.processor.sqs, url).total == 0
        except NorthmigrateError as exc:
            log.warning("the probe could not read the queue's depth: %s", exc)
            return False

    def _one(self, url: str, message: InMessage) -> Outcome:
        """One record tried, and acknowledged (deleted, or hidden until the next probe)."""
        sqs = self.processor.sqs
        outcome = self.processor.process(message, probe=True)
        if outcome.delete:
            delete_batch(sqs, url, [outcome], lambda o: o.message.receipt_handle)
        else:
            hidden = int(self.interval_s)
            change_visibility_batch(
                sqs, url, [outcome], lambda o: o.message.receipt_handle, lambda o: hidden
            )
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome


def scheduled_probe(
    processor: Processor,
    tap: Tap,
    guard: GuardSettings,
    *,
    by: str,
    told: Callable[[Outcome], None] | None = None,
) -> dict[str, Any]:
    """One probe now, as a schedule asks for it (Lambda): nothing is tried when the tap is
    open, closed by a person, or ``guard.reopen = "manual"``. The answer says which."""
    state = tap.state()
    why = None
    if state.open:
        why = "open"
    elif not state.closed_by_guard:
        why = "closed by a person"
    elif guard.reopen != "probe":
        why = "closed by the guard: reopen is manual"
    if why is not None:
        return {"event": "probe", "tap": why, "opened": False}
    prober = Prober(processor, tap, by=by, interval_s=guard.probe_interval_s, on_outcome=told)
    opened = prober.probe()
    return {"event": "probe", "tap": "open" if opened else "closed by the guard", "opened": opened}
