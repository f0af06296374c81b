"""The worker: the parts wired together, and how a run starts and stops.

Threads, each with one job (see the part's module for its rules):

- receivers (:mod:`.receiver`): long polls that keep the pool fed, at most ``PREFETCH``
  messages per receiver waiting in memory to be started, paced by ``--rate`` and the tap;
  how many receive at once adapts to the endpoint (:mod:`northmigrate.aws.inflight`), from
  ``receivers_for`` up to ``RECEIVER_HEADROOM`` times that, as many full receives as the
  pool and its prefetch have room for;
- the pool (:mod:`.dispatcher`): ``concurrency`` threads running the per-record path,
  FIFO message groups in order;
- acknowledgers (:mod:`.acknowledger`, as many as receivers): deletes, backoff visibility
  and hand-backs, in batches;
- the heartbeat (:mod:`northmigrate.consume.heartbeat`): extends the visibility of every message
  held (:mod:`.ledger`), so a slow record is not delivered to anyone else while it runs.

A message is deleted only when its outcome allows it: migrated, safely copied to the DLQ,
or retried as a delayed copy SQS confirmed. Stopping (the ``stop`` event): no more
receives, unstarted messages handed back at once, started records finish within the grace
period; a record still running after it is left to SQS (it comes back when its visibility
lapses).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.inflight import InFlight, Tuning
from northmigrate.aws.queues import Queues
from northmigrate.config import Settings
from northmigrate.consume.backoff import delays_for
from northmigrate.consume.events import Emit, record_event
from northmigrate.consume.guard import Guard, Trip
from northmigrate.consume.heartbeat import Heartbeat
from northmigrate.consume.presence import beat
from northmigrate.consume.probe import Prober
from northmigrate.consume.processing import Outcome, Processor
from northmigrate.consume.tap import GUARD, Tap
from northmigrate.consume.throttle import FLOOR, Throttle
from northmigrate.consume.worker.acknowledger import Acknowledger
from northmigrate.consume.worker.dispatcher import Dispatcher
from northmigrate.consume.worker.gate import Gate, GuardStopped, TapGate
from northmigrate.consume.worker.ledger import Ledger
from northmigrate.consume.worker.receiver import UNTIL_EMPTY_WAIT_S, Receiver
from northmigrate.consume.worker.report import WorkerReport
from northmigrate.errors import NorthmigrateError
from northmigrate.plugin import Migration

log = logging.getLogger("northmigrate.worker")

MAX_RECEIVERS = 4  # receive threads: one per 10 slots of concurrency, at most this many
# The receives and acknowledgements in flight start at ``receivers_for`` and adapt, up to
# this many times that, as the ledger's room allows (northmigrate.aws.inflight).
RECEIVER_HEADROOM = 2
PREFETCH = 10  # messages per receiver that may wait in memory to be started
RECEIVER_JOIN_S = 13  # how long stopping waits for a receiver (its longest poll and more)

ProgressCallback = Callable[[WorkerReport], None]


def receivers_for(concurrency: int, *, fifo: bool = False) -> int:
    """Receive threads for a pool of ``concurrency``: one per 10 slots, at most
    ``MAX_RECEIVERS``, and two from a pool of 4 up (one receive's round trip overlaps the
    other's, which keeps even a pool of fast handlers fed). One on a FIFO queue: its
    throughput is bounded by its message groups, and one receiver keeps their order plain."""
    if fifo or concurrency < 4:
        return 1
    return max(2, min(MAX_RECEIVERS, -(-concurrency // 10)))


def receive_threads(receivers: int, capacity: int, *, fifo: bool) -> int:
    """Receive (and acknowledgement) threads, the cap of their adaptive limits: up to
    ``RECEIVER_HEADROOM`` times the receivers, as many full receives of ten as the ledger's
    ``capacity`` has room for (more would only split it into smaller receives); one on FIFO."""
    if fifo:
        return receivers
    return max(receivers, min(receivers * RECEIVER_HEADROOM, capacity // PREFETCH))


class Worker:
    """Processes the main queue's messages with a migration; see the module docstring.

    ``run(until_empty=True)`` drains the queue and returns; ``run()`` runs until ``stop`` is
    set (or ``max_messages`` were received). Everything time-related is injectable.
    """

    def __init__(
        self,
        clients: AwsClients,
        settings: Settings,
        migration: Migration[Any],
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        stop: threading.Event | None = None,
        grace_period_s: float | None = None,
        wait_time_s: int | None = None,
        on_progress: ProgressCallback | None = None,
        progress_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        tap: Gate | None = None,
        emit: Emit | None = None,
        notify: Emit | None = None,
    ) -> None:
        ws = settings.worker
        self.clients = clients
        self.settings = settings
        self.migration = migration
        self.concurrency = concurrency or ws.concurrency
        self.grace_period_s = ws.grace_period_s if grace_period_s is None else grace_period_s
        self.wait_time_s = ws.wait_time_s if wait_time_s is None else wait_time_s
        self.stop = stop or threading.Event()
        self.fifo = settings.queue.fifo
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        self.rate = rate
        self.tap = tap  # None: the main queue's tap (consume.tap), read when run starts
        self.emit = emit  # one event per record outcome (worker --log-format json)
        self.notify = notify  # what a waiting worker waits for (the CLI: stderr)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._delays = delays_for(settings.worker, self._rng)
        self.sqs = clients.client("sqs")
        self.queues = Queues(self.sqs, settings.queue)
        self.report = WorkerReport(queue=settings.queue.name, concurrency=self.concurrency)
        self.receivers = receivers_for(self.concurrency, fifo=self.fifo)
        self.capacity = self.concurrency + PREFETCH * self.receivers  # running + waiting
        self.receive_threads = receive_threads(self.receivers, self.capacity, fifo=self.fifo)
        self.url = ""
        self.visibility_timeout_s = settings.queue.visibility_timeout
        self.receiver: Receiver | None = None
        self.guard: Guard | None = None
        self._background_stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the run --------------------------------------------------------------------------

    def run(self, *, until_empty: bool = False, max_messages: int | None = None) -> WorkerReport:
        started = self._clock()
        self.url = self.queues.main_url()
        tap = self.tap = self.tap if self.tap is not None else TapGate(self.sqs, self.url)
        attrs = self.queues.attributes(self.url, ["VisibilityTimeout"])
        self.visibility_timeout_s = int(
            attrs.get("VisibilityTimeout", self.settings.queue.visibility_timeout)
        )
        processor = Processor(
            self.migration,
            clients=self.clients,
            options=self.settings.migration.options,
            dlq_url=self.queues.dlq_url(),
            max_receive_count=self.settings.queue.max_receive_count,
            fifo=self.fifo,
            sqs=self.sqs,
            queue_url=self.url,
            retry_delay=self._delays,  # by the failure's kind (backoff.RetryDelays)
        )
        heartbeat = Heartbeat(self.sqs, self.url, self.visibility_timeout_s, clock=self._clock)
        guard = self.guard = worker_guard(self.settings, self.clients, self.queues)
        cap = self.receive_threads  # of the receives and of the acknowledgements in flight
        ledger = Ledger(self.capacity, heartbeat, self.report)
        acknowledger = Acknowledger(
            self.sqs,
            self.url,
            ledger=ledger,
            report=self.report,
            retry_visibility=lambda attempt, kind: self._delays(
                attempt,
                kind,
                self.visibility_timeout_s,  # in place: at most the visibility
            ),
            threads=self.receive_threads,
            clock=self._clock,
            sleep=self._sleep,
            emit=self.emit,
            migration=self.migration.name,
            guard=guard,
            inflight=InFlight(cap, tuning=Tuning(start=self.receivers), clock=self._clock),
        )
        dispatcher = Dispatcher(
            processor,
            acknowledger,
            concurrency=self.concurrency,
            fifo=self.fifo,
            stopping=self.stop.is_set,
        )
        wait = min(self.wait_time_s, UNTIL_EMPTY_WAIT_S) if until_empty else self.wait_time_s
        receiver = self.receiver = Receiver(
            self.sqs,
            self.url,
            ledger=ledger,
            dispatcher=dispatcher,
            acknowledger=acknowledger,
            tap=tap,
            rate=self.rate,
            stop=self.stop,
            wait_s=wait,
            max_messages=max_messages,
            depth=lambda: self.queues.depth(self.url),
            clock=self._clock,
            sleep=self._sleep,
            guard=guard,
            inflight=InFlight(cap, tuning=Tuning(start=self.receivers), clock=self._clock),
            prober=worker_prober(self, processor),
            notify=self.notify,
        )
        dispatcher.start(self._spawn)
        acknowledger.start(self._spawn)
        if self.settings.worker.heartbeat:
            self._spawn(lambda: heartbeat.run(self._background_stop), "nm-heartbeat")
        self._spawn(lambda: beat(self.sqs, self.url, self._background_stop), "nm-seen")  # presence
        if self.on_progress is not None:
            self._spawn(self._progress_loop, "nm-progress")
        more = [
            self._spawn(receiver.run_more, f"nm-receive-{i}")
            for i in range(1, self.receive_threads)
        ]
        try:
            self.report.stopped = receiver.run(until_empty=until_empty)
        except GuardStopped as exc:
            self.report.error = exc
            self.report.stopped = "guard"
        except NorthmigrateError as exc:
            self.report.error = exc
            self.report.stopped = "error"
        except BaseException:  # a second Ctrl-C: abort now, SQS gives everything back later
            self._background_stop.set()
            raise
        self.report.depth = receiver.last_depth or self.report.depth
        self._shutdown(
            receiver,
            more,
            ledger,
            dispatcher,
            acknowledger,
            graceful=self.report.stopped in ("signal", "error", "guard"),
        )
        self.report.duration_s = self._clock() - started
        return self.report

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        # Daemon threads: a handler still running after the grace period cannot hold the
        # process; its message is not deleted, so SQS delivers it again.
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    # -- progress -------------------------------------------------------------------------

    def _progress_loop(self) -> None:
        assert self.on_progress is not None
        last_depth = float("-inf")
        while not self._background_stop.wait(self.progress_interval_s):
            if self._clock() - last_depth >= 5.0:
                last_depth = self._clock()
                with contextlib.suppress(NorthmigrateError):
                    self.report.depth = self.queues.depth(self.url)
            self.on_progress(self.progress())

    def progress(self) -> WorkerReport:
        return self.report.snapshot()

    # -- stopping -------------------------------------------------------------------------

    def _shutdown(self, *parts: Any, graceful: bool) -> None:
        """Wind down (see :func:`wind_down`), then stop the background threads."""
        receiver, more, ledger, dispatcher, acknowledger = parts
        wind_down(self, receiver, more, ledger, dispatcher, acknowledger, graceful=graceful)
        self._background_stop.set()
        dispatcher.stop()
        if self.on_progress is not None:
            self.on_progress(self.progress())


def wind_down(
    worker: Worker,
    receiver: Receiver,
    more: list[threading.Thread],
    ledger: Ledger,
    dispatcher: Dispatcher,
    acknowledger: Acknowledger,
    *,
    graceful: bool,
) -> None:
    """End receiving, hand back what was not started, let started records finish (within
    the grace period when stopping early), and flush acknowledgements."""
    clock, stop, grace = worker._clock, worker.stop, worker.grace_period_s
    receiver.over.set()
    deadline: float | None = None
    if graceful or stop.is_set():
        dispatcher.stop_starting()
        deadline = clock() + grace
    for thread in more:
        thread.join(timeout=RECEIVER_JOIN_S)
    while True:
        if deadline is None and stop.is_set():
            dispatcher.stop_starting()
            deadline = clock() + grace
        if ledger.held == 0:
            break
        if deadline is not None and clock() >= deadline:
            break
        worker._sleep(0.05)
    worker.report.abandoned = ledger.close()
    if worker.report.abandoned:
        log.warning(
            "%d records still running after the %.0f s grace period: SQS delivers them "
            "again once their visibility timeout lapses",
            worker.report.abandoned,
            grace,
        )
    acknowledger.stop()


def worker_guard(settings: Settings, clients: AwsClients, queues: Queues) -> Guard | None:
    """The circuit breaker (``[guard]``): when it trips, this worker closes the tap for every
    consumer, with the reason, and stops."""
    if not settings.guard.enabled:
        return None
    by = f"{GUARD} (worker {socket.gethostname()}:{os.getpid()})"

    tap = Tap(clients, queues)

    def close_tap(trip: Trip) -> None:
        log.error("the guard closes the tap: %s", trip.reason)
        try:
            tap.close(by=trip.by, reason=trip.reason)
        except NorthmigrateError as exc:  # this worker stops all the same
            log.error("the guard could not close the tap for the others: %s", exc)

    # A worker's limit is in records per second: it lowers from the rate it ran at.
    throttle = Throttle(settings.guard, tap, by=by, start=lambda rate: max(FLOOR, round(rate)))
    return Guard(settings.guard, by=by, on_trip=close_tap, throttle=throttle)


def worker_prober(worker: Worker, processor: Processor) -> Prober | None:
    """The probe that reopens a tap the guard closed (``guard.reopen = "probe"``); the
    record it tries is counted in the report and told as an event like any other."""
    guard = worker.settings.guard
    if guard.reopen != "probe":
        return None

    def probed(outcome: Outcome) -> None:
        worker.report.count(outcome)
        if worker.emit is not None:
            worker.emit(record_event(outcome, migration=worker.migration.name, consumer="worker"))

    return Prober(
        processor,
        Tap(worker.clients, worker.queues),
        by=f"{GUARD} (worker {socket.gethostname()}:{os.getpid()})",
        interval_s=guard.probe_interval_s,
        on_outcome=probed,
    )
