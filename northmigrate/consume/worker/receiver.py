"""The receivers: long polls that keep the pool fed, paced by ``--rate`` and the tap.

Each receive first reserves its slots in the ledger (the pool and its prefetch must have
room), then takes tokens from the rate's bucket, then long-polls; what comes in is held by
the ledger and queued by the dispatcher (or handed back at once when the worker is
stopping). The first receiver runs on the caller's thread and decides when receiving ends:
a stop, ``--max-messages`` received, an empty queue with ``--until-empty`` (one empty long
poll while nothing is held, confirmed by the queue's depth), or a fatal error of any
receiver. The tap is read before every receive: a closed tap stops receives within its cache
time plus one long poll (at most ``TAP_MAX_WAIT_S``); its limit caps the rate.

How many receives are in flight at once adapts (:mod:`northmigrate.aws.inflight`): it grows
only while more receives bring more messages in (the pool waits for them), and a receive
that failed halves it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from northmigrate.aws.inflight import InFlight
from northmigrate.aws.sqs.message import InMessage
from northmigrate.aws.sqs.queue import Depth
from northmigrate.aws.sqs.receive import receive
from northmigrate.consume.backoff import TokenBucket
from northmigrate.consume.guard import Guard
from northmigrate.consume.probe import Prober
from northmigrate.consume.worker.acknowledger import Acknowledger
from northmigrate.consume.worker.dispatcher import Dispatcher
from northmigrate.consume.worker.gate import TAP_POLL_S, Gate, TapWaiter
from northmigrate.consume.worker.ledger import Ledger
from northmigrate.errors import NorthmigrateError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.worker")

UNTIL_EMPTY_WAIT_S = 1  # long-poll wait when draining: an empty queue is noticed quickly
EMPTY_RECEIVES = 1  # consecutive empty receives before the queue's depth is asked
# The longest long poll while a tap may close: a closed tap stops receives within the tap's
# cache time plus this (2 + 3 s).
TAP_MAX_WAIT_S = 3


class Receiver:
    def __init__(
        self,
        sqs: SQSClient,
        url: str,
        *,
        ledger: Ledger,
        dispatcher: Dispatcher,
        acknowledger: Acknowledger,
        tap: Gate,
        rate: float | None,
        stop: threading.Event,
        wait_s: int,
        max_messages: int | None,
        depth: Callable[[], Depth],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        guard: Guard | None = None,
        inflight: InFlight | None = None,
        prober: Prober | None = None,
        notify: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.sqs = sqs
        self.inflight = inflight  # None: every receiver's receive at once
        self.url = url
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.acknowledger = acknowledger
        self.tap = tap
        self.rate = rate
        self.stop = stop
        self.wait_s = min(wait_s, TAP_MAX_WAIT_S)
        self.max_messages = max_messages
        self._depth = depth
        self._clock = clock
        self._sleep = sleep
        self.bucket = TokenBucket(rate, clock=clock, wait=sleep) if rate else None
        self._paced_at = rate  # the rate of the bucket: --rate, capped by the tap's limit
        self.over = threading.Event()  # receiving has ended
        self._failure: NorthmigrateError | None = None
        self.last_depth: Depth | None = None
        self.guard = guard
        self.waiter = TapWaiter(tap, stop, guard=guard, prober=prober, notify=notify)

    # -- the first receiver ----------------------------------------------------------------

    def run(self, *, until_empty: bool) -> str:
        """Receive until receiving ends; why it ended: ``signal``, ``max_messages`` or
        ``empty``. Raises the NorthmigrateError of any receiver that failed for good."""
        empty = 0
        while True:
            if self._failure is not None:
                raise self._failure
            if self.stop.is_set():
                return "signal"
            if not self._tap_open():
                continue  # stop was set while the tap was closed
            if self.max_messages is not None and self.ledger.received >= self.max_messages:
                return "max_messages"
            got = self._receive_some()
            if got is None:
                continue  # nothing asked for: stop was set, or --max-messages is reserved
            if got:
                empty = 0
                continue
            empty += 1
            if until_empty and empty >= EMPTY_RECEIVES and self._idle():
                self.last_depth = self._depth()
                if self.last_depth.total == 0:
                    return "empty"
            if self.wait_s == 0:
                self.stop.wait(0.5)

    # -- further receivers -----------------------------------------------------------------

    def run_more(self) -> None:
        """A further receiver: receives while the pool has room, until receiving is over."""
        try:
            while not self.over.is_set() and not self.stop.is_set():
                if self.guard is not None and self.guard.trip is not None:
                    self.over.wait(TAP_POLL_S)  # the first receiver probes, or ends receiving
                    continue
                if not self.tap.wait_open(self.over):
                    return
                got = self._receive_some()
                if got is None or (got == 0 and self.wait_s == 0):
                    self.over.wait(0.1 if got is None else 0.5)
        except NorthmigrateError as exc:
            self._failure = exc  # the first receiver raises it

    # -- one receive -----------------------------------------------------------------------

    def _tap_open(self) -> bool:
        """Wait while the tap is closed, then pace at the tap's limit (records per second).
        A tap the guard closed ends receiving with ``guard.reopen = "manual"``; with a
        prober it is probed until it opens. Each closed tap is told once (``waiting``)."""
        if not self.waiter.wait_while_closed():
            return False
        limit = self.tap.limit()
        paced = min(r for r in (self.rate, limit) if r) if (self.rate or limit) else None
        if paced != self._paced_at:
            self._paced_at = paced
            self.bucket = TokenBucket(paced, clock=self._clock, wait=self._sleep) if paced else None
        return True

    def _give_up(self) -> bool:
        return self.stop.is_set() or self.over.is_set() or self._failure is not None

    def _receive_some(self) -> int | None:
        """One receive into the pool: how many messages came, or None if none was asked for.
        The slot first, then the ledger's room: a receiver waiting for a slot holds no room
        that a receive in flight could fill."""
        inflight = self.inflight
        if inflight is None:
            return self._reserve_and_receive()
        if not inflight.acquire(self._give_up):
            return None
        try:
            got = self._reserve_and_receive()
        except BaseException:
            inflight.release(0, strained=True)
            raise
        inflight.release(got or 0)
        return got

    def _reserve_and_receive(self) -> int | None:
        n = self.ledger.reserve(self.max_messages, self._give_up)
        if n == 0:
            return None
        return self._receive_reserved(n)

    def _receive_reserved(self, n: int) -> int | None:
        bucket = self.bucket
        asked = n
        if bucket is not None:
            asked = bucket.take(n, self.stop)
            if asked == 0:
                self.ledger.take_in([], n)
                return None
        try:
            messages = self._receive(asked)
        except NorthmigrateError:
            self.ledger.take_in([], n)
            raise
        if bucket is not None:
            bucket.refund(asked - len(messages))
        self._start(self.ledger.take_in(messages, n))
        return len(messages)

    def _receive(self, n: int) -> list[InMessage]:
        return receive(
            self.sqs,
            self.url,
            max_number=n,
            wait_s=self.wait_s,
            sleep=self.stop.wait,
            stopped=self.stop.is_set,
            on_retry=lambda why, delay: log.warning(
                "ReceiveMessage failed (%s); again in %.1f s", why, delay
            ),
        )

    def _start(self, fresh: list[InMessage]) -> None:
        if fresh and not self.dispatcher.accept(fresh):
            self.acknowledger.hand_back(fresh)

    def _idle(self) -> bool:
        return self.ledger.held == 0 and self.acknowledger.pending == 0
