"""What a local worker asks the tap before each receive: is it open, and at what limit?

The tap's state lives in the main queue's tags (:mod:`northmigrate.consume.tap`); a gate reads them
at most once per ``ttl`` seconds, so that a fleet of receivers does not ask SQS each time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from northmigrate.consume.guard import Guard, Trip
from northmigrate.consume.probe import Prober
from northmigrate.consume.tap import TapState, read_state
from northmigrate.errors import AwsError, NorthmigrateError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

TAP_POLL_S = 0.5  # how often a closed tap is read again (its gate caches the tags)


class Gate(Protocol):
    """What a worker needs from a tap (``TapGate``, ``OpenGate``, or a test's fake)."""

    def state(self) -> TapState: ...

    def is_open(self) -> bool: ...

    def limit(self) -> int | None: ...

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool: ...

    def refresh(self) -> None: ...


class TapGate:
    """What a local worker asks before each receive: is the tap open, and at what limit?

    Reads the queue's tags at most once per ``ttl`` seconds (clock injectable). An error
    reading them keeps the last known state (a worker does not stop for a blip).
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.ttl = ttl
        self.clock = clock
        self._state = TapState()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def state(self) -> TapState:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                with contextlib.suppress(AwsError):
                    self._state = read_state(self.sqs, self.queue_url)
                self._read_at = now
            return self._state

    def is_open(self) -> bool:
        return self.state().open

    def refresh(self) -> None:
        """Read the tags again at the next question (this consumer just changed them)."""
        with self._lock:
            self._read_at = None

    def limit(self) -> int | None:
        return self.state().limit

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool:
        """Block while the tap is closed; False when ``stop`` is set first."""
        while not stop.is_set():
            if self.is_open():
                return True
            stop.wait(poll)
        return False


class OpenGate:
    """A gate that is always open (a worker without a tap, and tests)."""

    def state(self) -> TapState:
        return TapState()

    def is_open(self) -> bool:
        return True

    def limit(self) -> int | None:
        return None

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool:
        return not stop.is_set()

    def refresh(self) -> None:
        return None


class GuardStopped(NorthmigrateError):
    """The guard closed the tap: this worker finishes what it started and stops (exit 1)."""

    exit_code = 1


class TapWaiter:
    """What a receiver does while the tap is closed: waits, says once what it waits for
    (``notify``: by whom, since when, why, and what reopens it), and with a prober asks
    every ``guard.probe_interval_s`` whether a tap the guard closed may open again. A tap
    the guard closed ends receiving (``GuardStopped``) when there is no prober
    (``guard.reopen = "manual"``)."""

    def __init__(
        self,
        tap: Gate,
        stop: threading.Event,
        *,
        guard: Guard | None,
        prober: Prober | None,
        notify: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.tap = tap
        self.stop = stop
        self.guard = guard
        self.prober = prober
        self.notify = notify

    def wait_while_closed(self) -> bool:
        """True once the tap is open; False when stopped first."""
        told: bool | None = None  # told of a tap closed by the guard (True) or a person
        while not self.stop.is_set():
            trip = self.guard.trip if self.guard is not None else None
            state = self.tap.state()
            by_guard = trip is not None or state.closed_by_guard
            if by_guard and self.prober is None:
                reason = trip.reason if trip is not None else state.reason
                raise GuardStopped(f"the guard closed the tap: {reason or 'no reason given'}")
            if state.open and trip is None:
                return True
            if by_guard != told:  # once per closing (the gate's cache may lag the trip)
                told = by_guard
                self._tell_waiting(state, trip)
                if by_guard and self.prober is not None:
                    self.prober.rearm()  # the first probe one interval after the closing
            if by_guard and self.prober is not None and self.prober.probe():
                self._reopened()
                told = None
                continue
            self.stop.wait(TAP_POLL_S)
        return False

    def _reopened(self) -> None:
        if self.guard is not None:
            self.guard.reset()
        self.tap.refresh()

    def _tell_waiting(self, state: TapState, trip: Trip | None) -> None:
        if self.notify is None:
            return
        by_guard = trip is not None or state.closed_by_guard
        if by_guard and self.prober is not None:
            reopens = f"the guard's next probe (every {self.prober.interval_s:.0f} s)"
        else:
            reopens = "northmigrate tap open"
        self.notify(
            {
                "event": "waiting",
                "for": "the tap to open",
                "closed_by": state.closed_by or (trip.by if trip is not None else None),
                "since": state.closed_at or (trip.at if trip is not None else None),
                "reason": state.reason or (trip.reason if trip is not None else None),
                "reopens": reopens,
            }
        )
