"""The local worker: drain the main queue into the new service, concurrently, losing nothing.

Threads, each with one job:

- receivers long-poll (at most 10 messages a call) while the pool has room: the caller's
  thread and more (see :func:`receivers_for`), so a round trip never starves the pool.
  Besides the messages being processed, at most ``PREFETCH`` per receiver wait in memory
  to be started (the heartbeat
  covers them; stopping hands them back at once; after a SIGKILL they come back when their
  visibility lapses, like the ones that were running);
- ``concurrency`` pool threads run :class:`~northmigrate.processing.Processor` on each
  message (on a FIFO queue, the messages of one message group one after the other, in
  order; a retry holds the rest of the group back by handing it back to SQS);
- acknowledgers (as many as receivers) delete finished messages in batches
  (``DeleteMessageBatch``), set the backoff visibility of the ones to retry and hand back
  (visibility 0) the unstarted ones;
- the heartbeat extends the visibility of every message held, so a slow record is not
  delivered to anyone else while it runs.

A message is deleted only when its outcome allows it: migrated, or safely copied to the DLQ.
Stopping (the ``stop`` event): no more receives, unstarted messages handed back at once,
started records finish within the grace period; a record still running after it is left
to SQS (it comes back when its visibility lapses).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from northmigrate.aws import AWS_EXCEPTIONS, AwsClients, is_fatal, translate
from northmigrate.backoff import TokenBucket, retry_delay
from northmigrate.config import Settings
from northmigrate.errors import NorthmigrateError
from northmigrate.heartbeat import Heartbeat
from northmigrate.plugin import Migration
from northmigrate.processing import (
    SQS_MAX_DELAY_S,
    InMessage,
    Outcome,
    Processor,
    Status,
    normalise,
)
from northmigrate.queues import Depth, Queues
from northmigrate.tap import Gate, TapGate

log = logging.getLogger("northmigrate.worker")

RECEIVE_ATTRIBUTES = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "MessageGroupId",
]
UNTIL_EMPTY_WAIT_S = 1  # long-poll wait when draining: an empty queue is noticed quickly
EMPTY_RECEIVES = 1  # consecutive empty receives before the queue's depth is asked
MAX_RECEIVERS = 4  # receive threads: one per 10 slots of concurrency, at most this many
PREFETCH = 10  # messages per receiver that may wait in memory to be started
RECEIVER_JOIN_S = 10  # beyond its long poll, how long stopping waits for a receiver
ACK_LINGER_S = 0.02  # how long the acknowledger waits to fill a batch
ACK_ATTEMPTS = 5
RECEIVE_ATTEMPTS = 10
REASONS_SHOWN = 20
_GONE = {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"}
# The longest long poll while a tap may close: a closed tap stops receives within the tap's
# cache time plus this (2 + 3 s).
TAP_MAX_WAIT_S = 3


@dataclass
class WorkerReport:
    """What a run did. ``received`` = ``succeeded + retried + dead_lettered + released +
    abandoned`` once the run is over."""

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

    @property
    def processed(self) -> int:
        return self.succeeded + self.retried + self.dead_lettered

    @property
    def rate(self) -> float:
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0

    def snapshot(self) -> WorkerReport:
        return replace(
            self, reasons=Counter(self.reasons), retry_reasons=Counter(self.retry_reasons)
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


def receivers_for(concurrency: int, *, fifo: bool = False) -> int:
    """Receive threads for a pool of ``concurrency``: one per 10 slots, at most
    ``MAX_RECEIVERS``, and two from a pool of 4 up (one receive's round trip overlaps the
    other's, which keeps even a pool of fast handlers fed). One on a FIFO queue: its
    throughput is bounded by its message groups, and one receiver keeps their order plain."""
    if fifo or concurrency < 4:
        return 1
    return max(2, min(MAX_RECEIVERS, -(-concurrency // 10)))


@dataclass(frozen=True)
class _Ack:
    message: InMessage
    visibility: int | None  # None: delete; otherwise ChangeMessageVisibility to this


ProgressCallback = Callable[[WorkerReport], None]


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
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._bucket = TokenBucket(rate, clock=clock, wait=sleep) if rate else None
        self.rate = rate
        self._paced_at = rate  # the rate of the bucket: --rate, capped by the tap's limit
        self.tap = tap  # None: the main queue's tap (northmigrate.tap), read when run starts
        self.sqs = clients.client("sqs")
        self.queues = Queues(self.sqs, settings.queue)
        self.report = WorkerReport(queue=settings.queue.name, concurrency=self.concurrency)
        self.receivers = receivers_for(self.concurrency, fifo=self.fifo)
        self.capacity = self.concurrency + PREFETCH * self.receivers  # running + waiting
        self._cond = threading.Condition()
        self._held = 0  # received and not yet settled (finished, or handed back)
        self._reserved = 0  # slots taken by receives in progress
        self._holding: dict[str, str] = {}  # message id -> the receipt handle it came with
        self._newest: dict[str, str] = {}  # message id -> a newer receipt handle, if it came again
        self._receiving_over = threading.Event()
        self._receive_failure: NorthmigrateError | None = None
        self._acks_pending = 0
        self._groups: dict[str, deque[InMessage]] = {}
        self._work: queue.Queue[str | None] = queue.Queue()
        self._acks: queue.Queue[_Ack | None] = queue.Queue()
        self._no_new_starts = False
        self._closed = False
        self._background_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.visibility_timeout_s = settings.queue.visibility_timeout
        self.heartbeat: Heartbeat | None = None
        self.processor: Processor | None = None

    # -- the run --------------------------------------------------------------------------

    def run(self, *, until_empty: bool = False, max_messages: int | None = None) -> WorkerReport:
        started = self._clock()
        self.url = self.queues.main_url()
        if self.tap is None:
            self.tap = TapGate(self.sqs, self.url)
        dlq_url = self.queues.dlq_url()
        attrs = self.queues.attributes(self.url, ["VisibilityTimeout"])
        self.visibility_timeout_s = int(
            attrs.get("VisibilityTimeout", self.settings.queue.visibility_timeout)
        )
        self.processor = Processor(
            self.migration,
            clients=self.clients,
            options=self.settings.migration.options,
            dlq_url=dlq_url,
            max_receive_count=self.settings.queue.max_receive_count,
            fifo=self.fifo,
            sqs=self.sqs,
            queue_url=self.url,
            retry_delay=self._retry_delay,
        )
        self.heartbeat = Heartbeat(self.sqs, self.url, self.visibility_timeout_s, clock=self._clock)
        self._start_threads()
        wait = min(self.wait_time_s, UNTIL_EMPTY_WAIT_S) if until_empty else self.wait_time_s
        wait = min(wait, TAP_MAX_WAIT_S)
        for i in range(1, self.receivers):
            self._spawn(lambda: self._more_receives(wait, max_messages), f"nm-receive-{i}")
        try:
            self._receive_loop(until_empty, max_messages, wait)
        except NorthmigrateError as exc:
            self.report.error = exc
            self.report.stopped = "error"
        except BaseException:  # a second Ctrl-C: abort now, SQS gives everything back later
            self._background_stop.set()
            raise
        self._shutdown(graceful=self.report.stopped in ("signal", "error"))
        self.report.duration_s = self._clock() - started
        return self.report

    def _start_threads(self) -> None:
        for i in range(self.concurrency):
            self._spawn(self._pool_loop, f"nm-worker-{i}")
        for i in range(self.receivers):
            self._spawn(self._ack_loop, f"nm-ack-{i}")
        if self.settings.worker.heartbeat and self.heartbeat is not None:
            self._spawn(lambda: self._heartbeat_loop(), "nm-heartbeat")
        if self.on_progress is not None:
            self._spawn(self._progress_loop, "nm-progress")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        # Daemon threads: a handler still running after the grace period cannot hold the
        # process; its message is not deleted, so SQS delivers it again.
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- receiving ------------------------------------------------------------------------

    def _receive_loop(self, until_empty: bool, max_messages: int | None, wait: int) -> None:
        """The first receiver, which also decides when receiving ends."""
        empty = 0
        while True:
            if self._receive_failure is not None:
                raise self._receive_failure
            if self.stop.is_set():
                self.report.stopped = "signal"
                return
            if not self._tap_open():
                continue  # stop was set while the tap was closed
            if max_messages is not None and self.report.received >= max_messages:
                self.report.stopped = "max_messages"
                return
            got = self._receive_some(wait, max_messages)
            if got is None:
                continue  # nothing asked for: stop was set, or --max-messages is reserved
            if got:
                empty = 0
                continue
            empty += 1
            if until_empty and empty >= EMPTY_RECEIVES and self._idle():
                depth = self.queues.depth(self.url)
                self.report.depth = depth
                if depth.total == 0:
                    self.report.stopped = "empty"
                    return
            if wait == 0:
                self.stop.wait(0.5)

    def _more_receives(self, wait: int, max_messages: int | None) -> None:
        """A further receiver: receives while the pool has room, until receiving is over."""
        assert self.tap is not None
        try:
            while not self._receiving_over.is_set() and not self.stop.is_set():
                if not self.tap.wait_open(self._receiving_over):
                    return
                got = self._receive_some(wait, max_messages)
                if got is None or (got == 0 and wait == 0):
                    self._receiving_over.wait(0.1 if got is None else 0.5)
        except NorthmigrateError as exc:
            self._receive_failure = exc  # the first receiver raises it

    def _tap_open(self) -> bool:
        """Wait while the tap is closed, then pace at the tap's limit (records per second)."""
        assert self.tap is not None
        if not self.tap.wait_open(self.stop):
            return False
        limit = self.tap.limit()
        paced = min(r for r in (self.rate, limit) if r) if (self.rate or limit) else None
        if paced != self._paced_at:
            self._paced_at = paced
            self._bucket = (
                TokenBucket(paced, clock=self._clock, wait=self._sleep) if paced else None
            )
        return True

    def _reserve(self, max_messages: int | None) -> int:
        """Slots for one receive (1..10), once the pool and its prefetch have room; 0 when
        nothing should be received (stop set, receiving over or failed, --max-messages all
        taken)."""
        with self._cond:
            while True:
                if self.stop.is_set() or self._receiving_over.is_set():
                    return 0
                if self._receive_failure is not None:
                    return 0
                room = self.capacity - self._held - self._reserved
                if max_messages is not None:
                    room = min(room, max_messages - self.report.received - self._reserved)
                    if room <= 0 and self._reserved == 0:
                        return 0
                if room > 0:
                    n = min(room, 10)
                    self._reserved += n
                    return n
                self._cond.wait(0.25)

    def _receive_some(self, wait: int, max_messages: int | None) -> int | None:
        """One receive into the pool: how many messages came, or None if none was asked for."""
        n = self._reserve(max_messages)
        if n == 0:
            return None
        bucket = self._bucket
        asked = n
        if bucket is not None:
            asked = bucket.take(n, self.stop)
            if asked == 0:
                self._take_in([], n)
                return None
        try:
            messages = self._receive(asked, wait)
        except NorthmigrateError:
            self._take_in([], n)
            raise
        if bucket is not None:
            bucket.refund(asked - len(messages))
        self._take_in(messages, n)
        return len(messages)

    def _idle(self) -> bool:
        with self._cond:
            return self._held == 0 and self._acks_pending == 0

    def _receive(self, n: int, wait: int) -> list[InMessage]:
        failures = 0
        while True:
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=n,
                    WaitTimeSeconds=wait,
                    MessageAttributeNames=["All"],
                    AttributeNames=RECEIVE_ATTRIBUTES,  # type: ignore[arg-type]
                )
                return [normalise(m) for m in response.get("Messages", [])]
            except AWS_EXCEPTIONS as exc:
                failures += 1
                if is_fatal(exc) or failures >= RECEIVE_ATTEMPTS:
                    raise translate(exc, "ReceiveMessage") from exc
                delay = min(30.0, 0.5 * 2**failures)
                log.warning("ReceiveMessage failed (%s); again in %.1f s", exc, delay)
                if self.stop.wait(delay):
                    return []

    def _take_in(self, messages: list[InMessage], reserved: int) -> None:
        """Settle a receive's reservation and start its messages (hand them back if the
        worker is stopping).

        A message that comes again while this worker still holds it (SQS delivers at least
        once; an emulator may hand one message to two concurrent receives) is not started
        twice: the newest receipt handle is kept for its heartbeat and its delete.
        """
        assert self.heartbeat is not None
        fresh: list[InMessage] = []
        again: list[tuple[str, str]] = []  # (first receipt handle, newest) of repeats
        with self._cond:
            self._reserved -= reserved
            self._cond.notify_all()
            if not messages or self._closed:
                # Closed: too late even to hand them back; SQS gives them out again after
                # their visibility timeout.
                return
            for message in messages:
                first = self._holding.get(message.message_id)
                if first is None:
                    self._holding[message.message_id] = message.receipt_handle
                    fresh.append(message)
                else:
                    self._newest[message.message_id] = message.receipt_handle
                    again.append((first, message.receipt_handle))
            # Counted with the reservation's end, so that no other receive overshoots the
            # capacity or --max-messages meanwhile.
            self.report.received += len(fresh)
            self._held += len(fresh)
        # The heartbeat's lock may be held across a round of calls: not under ours.
        for first, newest in again:
            self.heartbeat.add(first, newest)
            log.info("a message came again while held: not started twice")
        for message in fresh:
            self.heartbeat.add(message.receipt_handle, message.receipt_handle)
        starts: list[str] = []
        with self._cond:
            late = self._closed
            if late:
                self.report.received -= len(fresh)
                self._held -= len(fresh)
            accept = not (late or self.stop.is_set() or self._no_new_starts)
            if accept:
                for message in fresh:
                    key = message.receipt_handle
                    if self.fifo and message.group_id:
                        key = message.group_id
                    group = self._groups.get(key)
                    if group is not None:
                        group.append(message)
                    else:
                        self._groups[key] = deque([message])
                        starts.append(key)
        if late:  # closed meanwhile: SQS gives them out again after their visibility timeout
            for message in fresh:
                self._let_go(message)
            return
        if not accept:
            self._hand_back(fresh)
            return
        for key in starts:
            self._work.put(key)

    def _let_go(self, message: InMessage) -> InMessage:
        """Stop holding ``message``; it, with the newest receipt handle it came with."""
        assert self.heartbeat is not None
        self.heartbeat.remove(message.receipt_handle)
        with self._cond:
            self._holding.pop(message.message_id, None)
            newest = self._newest.pop(message.message_id, None)
        return message if newest is None else replace(message, receipt_handle=newest)

    # -- processing -----------------------------------------------------------------------

    def _pool_loop(self) -> None:
        while True:
            key = self._work.get()
            if key is None:
                return
            self._run_group(key)

    def _run_group(self, key: str) -> None:
        while True:
            with self._cond:
                group = self._groups.get(key)
                if not group:
                    self._groups.pop(key, None)
                    return
                if self._no_new_starts or self.stop.is_set():
                    rest = list(group)
                    self._groups.pop(key, None)
                    break
                message = group.popleft()
            outcome = self._process(message)
            self._settle(outcome)
            if outcome.status is Status.RETRY and self.fifo:
                # A failure holds the rest of its group back: SQS gives them out again, in
                # order, once the failed message (still in flight, backing off) is resolved.
                with self._cond:
                    rest = list(self._groups.pop(key, ()))
                break
        self._hand_back(rest)

    def _process(self, message: InMessage) -> Outcome:
        assert self.processor is not None
        try:
            return self.processor.process(message)
        except Exception as exc:  # a bug on our side: the message stays and comes back
            # Its text may quote a record: the class alone, the traceback only with --debug.
            log.warning(
                "processing message %s failed unexpectedly (%s); it comes back later",
                message.message_id,
                type(exc).__name__,
            )
            log.debug("processing message %s failed", message.message_id, exc_info=True)
            reason = f"internal error: {type(exc).__name__}"
            return Outcome(Status.RETRY, message, reason=reason, error=exc)

    def _retry_delay(self, attempt: int, *, ceiling_s: int = SQS_MAX_DELAY_S) -> int:
        """The backoff before a failed record's next try (see backoff.retry_delay): at most
        SQS's longest delay for a retry's copy, the visibility timeout for one in place."""
        return retry_delay(
            attempt,
            base_s=self.settings.worker.backoff_base_s,
            max_s=self.settings.worker.backoff_max_s,
            visibility_timeout_s=ceiling_s,
            rng=self._rng,
        )

    def _settle(self, outcome: Outcome) -> None:
        message = self._let_go(outcome.message)
        if outcome.delete:
            ack = _Ack(message, None)
        else:  # in place: hidden for the backoff, at most the queue's visibility timeout
            ack = _Ack(
                message, self._retry_delay(outcome.attempt, ceiling_s=self.visibility_timeout_s)
            )
        with self._cond:
            if outcome.status is Status.SUCCEEDED:
                self.report.succeeded += 1
            elif outcome.status is Status.DEAD_LETTERED:
                self.report.dead_lettered += 1
                self.report.reasons[outcome.reason or "unknown"] += 1
            else:
                self.report.retried += 1
                self.report.retry_reasons[outcome.reason or "unknown"] += 1
            self._held -= 1
            if self._closed:
                self._cond.notify_all()
                return  # too late to acknowledge: SQS delivers it again
            self._acks_pending += 1
            self._cond.notify_all()
        if outcome.retried:
            log.info(
                "record %s (attempt %d) will be tried again in %s s: %s",
                outcome.record_id,
                outcome.attempt,
                outcome.delay_s if ack.visibility is None else ack.visibility,
                outcome.reason,
            )
        self._acks.put(ack)

    def _hand_back(self, messages: list[InMessage]) -> None:
        """Make received-but-unstarted messages visible again at once."""
        if not messages:
            return
        messages = [self._let_go(message) for message in messages]
        with self._cond:
            self.report.released += len(messages)
            self._held -= len(messages)
            self._acks_pending += len(messages)
            self._cond.notify_all()
        for message in messages:
            self._acks.put(_Ack(message, 0))

    # -- acknowledging --------------------------------------------------------------------

    def _ack_loop(self) -> None:
        finished = False
        while not finished:
            first = self._acks.get()
            if first is None:
                return
            batch = [first]
            deadline = self._clock() + ACK_LINGER_S
            while len(batch) < 10:
                remaining = deadline - self._clock()
                try:
                    item = self._acks.get(timeout=max(remaining, 0.0) or 0.001)
                except queue.Empty:
                    break
                if item is None:
                    finished = True
                    break
                batch.append(item)
            self._acknowledge(batch)
            with self._cond:
                self._acks_pending -= len(batch)
                self._cond.notify_all()

    def _acknowledge(self, batch: list[_Ack]) -> None:
        deletes = [a for a in batch if a.visibility is None]
        changes = [a for a in batch if a.visibility is not None]
        if deletes:
            failed = self._batch_call("delete_message_batch", deletes)
            if failed:
                with self._cond:
                    self.report.delete_failed += failed
        if changes:
            self._batch_call("change_message_visibility_batch", changes)

    def _batch_call(self, operation: str, acks: list[_Ack]) -> int:
        """Call a batch API until every entry succeeded or cannot; how many did not."""
        pending = {str(i): a for i, a in enumerate(acks)}
        call = getattr(self.sqs, operation)
        refused = 0
        why = ""
        for attempt in range(ACK_ATTEMPTS):
            if attempt:
                self._sleep(min(2.0, 0.1 * 2**attempt))
            entries = []
            for entry_id, ack in pending.items():
                entry: dict[str, Any] = {
                    "Id": entry_id,
                    "ReceiptHandle": ack.message.receipt_handle,
                }
                if ack.visibility is not None:
                    entry["VisibilityTimeout"] = ack.visibility
                entries.append(entry)
            try:
                response = call(QueueUrl=self.url, Entries=entries)
            except AWS_EXCEPTIONS as exc:
                why = str(translate(exc, operation))
                if is_fatal(exc):
                    break
                continue
            for ok in response.get("Successful", []):
                pending.pop(ok["Id"], None)
            for failed in response.get("Failed", []):
                why = f"{failed.get('Code', '?')}: {failed.get('Message', '')}"
                if failed.get("SenderFault") or failed.get("Code") in _GONE:
                    gone = pending.pop(failed["Id"], None)
                    if gone is not None:
                        refused += 1
                        log.warning("%s: message %s: %s", operation, gone.message.message_id, why)
            if not pending:
                break
        for ack in pending.values():
            log.warning("%s: message %s: %s", operation, ack.message.message_id, why)
        return refused + len(pending)

    # -- background -----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        assert self.heartbeat is not None
        self.heartbeat.run(self._background_stop)

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
        with self._cond:
            return self.report.snapshot()

    # -- stopping -------------------------------------------------------------------------

    def _stop_starting(self) -> None:
        """Start nothing more, and hand back every message received but not started."""
        with self._cond:
            self._no_new_starts = True
            unstarted = [m for group in self._groups.values() for m in group]
            for group in self._groups.values():
                group.clear()
        self._hand_back(unstarted)

    def _shutdown(self, *, graceful: bool) -> None:
        """End receiving, hand back what was not started, let started records finish (within
        the grace period when stopping early), flush acknowledgements, stop the background
        threads."""
        self._receiving_over.set()
        deadline: float | None = None
        if graceful or self.stop.is_set():
            self._stop_starting()
            deadline = self._clock() + self.grace_period_s
        for thread in self._threads:
            if thread.name.startswith("nm-receive-"):
                thread.join(timeout=TAP_MAX_WAIT_S + RECEIVER_JOIN_S)
        while True:
            if deadline is None and self.stop.is_set():
                self._stop_starting()
                deadline = self._clock() + self.grace_period_s
            with self._cond:
                if self._held == 0:
                    break
            if deadline is not None and self._clock() >= deadline:
                break
            self._sleep(0.05)
        with self._cond:
            self._closed = True
            self.report.abandoned = self._held
        if self.report.abandoned:
            log.warning(
                "%d records still running after the %.0f s grace period: SQS delivers them "
                "again once their visibility timeout lapses",
                self.report.abandoned,
                self.grace_period_s,
            )
        ackers = [t for t in self._threads if t.name.startswith("nm-ack-")]
        for _ in ackers:
            self._acks.put(None)
        for thread in ackers:
            thread.join(timeout=60)
        self._background_stop.set()
        for _ in range(self.concurrency):
            self._work.put(None)
        if self.on_progress is not None:
            self.on_progress(self.progress())
