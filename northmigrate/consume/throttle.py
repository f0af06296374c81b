"""Throttling slows the consumers down: the guard lowers the tap's limit and raises it again.

A throttled try is not charged (:mod:`northmigrate.consume.processing`: the record comes back
later with its count unchanged); what it says is that the consumers ask too fast. Every
``guard.throttle_step_s`` (10 s) of outcomes, each consumer looks at its last step:

- some tries were throttled: the tap's limit is halved (``tap limit``: the local workers'
  records per second, the mappings' maximum concurrency), never below ``FLOOR`` (2, SQS's
  least maximum concurrency). With no limit yet it starts from what this consumer ran at:
  a worker's records per second over the step, a function's mapping concurrency
  (``deploy.max_concurrency``). The tags say ``by: guard (…)``, why, and the limit it
  lowered from (an operator's limit, restored at the end);
- no try was throttled and the limit is the guard's: it is raised by half (at least one),
  step by step, until it reaches the limit it lowered from (the operator's is put back;
  with none, the limit is lifted);
- throttled at the floor for ``guard.throttle_outage_s`` (5 min): the target cannot take
  even that; :meth:`Throttle.record` says so and the guard treats it as an outage.

A limit an operator set is the ceiling: the guard lowers from it and gives it back, and
never raises above it. Failing to read or set the tags is logged; the records go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from northmigrate.config import GuardSettings
from northmigrate.consume.processing import Outcome
from northmigrate.consume.tap import MIN_MAPPING_CONCURRENCY, TapState
from northmigrate.errors import NorthmigrateError
from northmigrate.failures import THROTTLED

log = logging.getLogger("northmigrate.guard")
FLOOR = MIN_MAPPING_CONCURRENCY


class LimitTap(Protocol):
    """What the throttle needs of the tap (``tap.Tap``, or a test's fake)."""

    def state(self) -> TapState: ...

    def limit(
        self, n: int | None, *, by: str = ..., reason: str | None = ..., was: int | None = ...
    ) -> object: ...

    def ceiling(self) -> int:
        """The highest limit the tap takes (maximum pollers above 1,000 in provisioned mode)."""
        ...


class Throttle:
    """One consumer's view of throttling; thread-safe. ``start(rate)`` is the limit to
    lower from when there is none (given this consumer's records per second)."""

    def __init__(
        self,
        settings: GuardSettings,
        tap: LimitTap,
        *,
        by: str,
        start: Callable[[float], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.tap = tap
        self.by = by
        self.start = start
        self._clock = clock
        self._lock = threading.Lock()
        self._step_at = clock()
        self._tries = 0
        self._throttled = 0
        self._ceiling: int | None = None  # where this consumer's lowering started
        self._floor_since: float | None = None

    def record(self, outcome: Outcome) -> bool:
        """Count one outcome; True when throttling persisted at the floor for
        ``guard.throttle_outage_s`` (an outage, for the guard)."""
        with self._lock:
            now = self._clock()
            self._tries += 1
            self._throttled += outcome.error_kind == THROTTLED
            elapsed = now - self._step_at
            if elapsed < self.settings.throttle_step_s:
                return False
            tries, throttled = self._tries, self._throttled
            self._tries = self._throttled = 0
            self._step_at = now
            try:
                return self._step(tries, throttled, elapsed, now)
            except NorthmigrateError as exc:  # the records go on; the next step tries again
                log.warning("the guard could not change the tap's limit: %s", exc)
                return False

    def _step(self, tries: int, throttled: int, elapsed: float, now: float) -> bool:
        state = self.tap.state()
        if not state.open:
            return False
        if throttled:
            current = state.limit or self.start(tries / elapsed if elapsed > 0 else 0.0)
            if current > FLOOR:
                lowered = max(FLOOR, min(current // 2, self.tap.ceiling()))
                was = state.limit_was if state.limited_by_guard else state.limit
                self._ceiling = self._ceiling or current
                why = f"throttled: {throttled} of {tries} tries in {elapsed:.0f} s"
                log.warning("the guard lowers the tap's limit to %d (%s)", lowered, why)
                self.tap.limit(lowered, by=self.by, reason=why, was=was)
                self._floor_since = None
                return False
            self._floor_since = self._floor_since if self._floor_since is not None else now
            return now - self._floor_since >= self.settings.throttle_outage_s
        self._floor_since = None
        if state.limit is None or not state.limited_by_guard:
            return False
        rate = tries / elapsed if elapsed > 0 else 0.0
        ceiling = state.limit_was or self._ceiling or self.start(rate)
        raised = state.limit + max(1, state.limit // 2)
        if raised < ceiling:
            why = f"no throttling for {elapsed:.0f} s: raised step by step"
            self.tap.limit(
                min(raised, self.tap.ceiling()), by=self.by, reason=why, was=state.limit_was
            )
        elif state.limit_was is not None:  # the operator's limit, given back
            self.tap.limit(state.limit_was, by="operator")
        else:
            self.tap.limit(None)
            self._ceiling = None
        log.info("the guard raises the tap's limit (no throttling for %.0f s)", elapsed)
        return False
