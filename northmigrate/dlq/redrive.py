"""``dlq redrive``: move dead letters back to the main queue (or another), losing none.

The orchestration of a client-side move: threads each receive a chunk of up to 10 messages
from the DLQ (hidden for ``visibility_timeout``), as many at once as the adaptive limit of
:mod:`northmigrate.aws.inflight` allows (at most ``concurrency``), filter it (``--where``),
take from the budget (``--max``) and the rate's bucket (``--rate``), and hand the chosen
letters to the mover (:mod:`northmigrate.dlq.mover`: send, confirm, then delete). Messages
that do not match, that could not be sent, or whose delete failed are held hidden until the
run ends and then made visible again at once (the technique of
:mod:`northmigrate.aws.sqs.reader`), so one run sees each message once.

``native_redrive`` (:mod:`northmigrate.dlq.native`) uses SQS's own ``StartMessageMoveTask``
instead.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import aws_errors
from northmigrate.aws.inflight import MAX_IN_FLIGHT, InFlight, Slot
from northmigrate.aws.sqs.batching import MAX_BATCH_ENTRIES
from northmigrate.aws.sqs.queue import depth, queue_arn, queue_name
from northmigrate.aws.sqs.reader import STALE_RECEIVES, Reader, back_within_s
from northmigrate.config import SQS_MAX_MESSAGE_SIZE
from northmigrate.consume.backoff import TokenBucket
from northmigrate.dlq.budget import Budget, SharedMax
from northmigrate.dlq.letters import Letter, read_letter
from northmigrate.dlq.mover import Mover
from northmigrate.dlq.native import native_redrive
from northmigrate.dlq.report import MODE_CLIENT, MODE_NATIVE, Progress, RedriveReport
from northmigrate.dlq.where import Condition, matches
from northmigrate.errors import InputError, NorthmigrateError
from northmigrate.records.envelope import utc_now

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.dlq")

REDRIVE_VISIBILITY_S = 300

__all__ = [
    "MODE_CLIENT",
    "MODE_NATIVE",
    "REDRIVE_VISIBILITY_S",
    "RedriveReport",
    "default_destination",
    "native_redrive",
    "redrive",
]


def default_destination(sqs: SQSClient, dlq_url: str, main_url: str) -> str:
    """The queue whose redrive policy names this DLQ: the configured main queue when it
    does (or when no queue does), else the one queue that does."""
    dlq_arn = queue_arn(sqs, dlq_url)
    with aws_errors(f"queue {queue_name(main_url)}"):
        attrs = sqs.get_queue_attributes(QueueUrl=main_url, AttributeNames=["RedrivePolicy"])
    policy = attrs.get("Attributes", {}).get("RedrivePolicy")
    if policy and json.loads(policy).get("deadLetterTargetArn") == dlq_arn:
        return main_url
    with aws_errors(f"ListDeadLetterSourceQueues of {queue_name(dlq_url)}"):
        sources = list(sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", []))
    if not sources or main_url in sources:
        return main_url
    if len(sources) == 1:
        return str(sources[0])
    names = ", ".join(sorted(queue_name(u) for u in sources))
    raise InputError(
        f"several queues dead-letter into {queue_name(dlq_url)} ({names})",
        hint="pass --to QUEUE",
    )


class _Run:
    def __init__(
        self,
        reader: Reader,
        mover: Mover,
        report: RedriveReport,
        *,
        conditions: Sequence[Condition],
        dry_run: bool,
        budget: Budget,
        bucket: TokenBucket | None,
        stop: threading.Event,
        progress: Progress | None,
        inflight: InFlight,
        on_moved: Callable[[list[Letter]], None] | None = None,
    ) -> None:
        self.on_moved = on_moved
        self.inflight = inflight
        self.reader = reader
        self.mover = mover
        self.report = report
        self.conditions = conditions
        self.dry_run = dry_run
        self.budget = budget
        self.bucket = bucket
        self.stop = stop
        self.progress = progress
        self.abort = threading.Event()  # a thread hit an error: the others stop too
        # A thread found the DLQ empty (or only messages this run has seen): the threads
        # waiting for a slot do not each wait one more long poll to find the same.
        self.drained = threading.Event()
        self.lock = threading.Lock()

    def _end(self, why: str) -> None:
        with self.lock:
            if not self.report.ended or why in ("error", "stop"):
                self.report.ended = why

    def loop(self) -> None:
        try:
            self._loop()
        except NorthmigrateError as exc:
            with self.lock:
                self.report.error = self.report.error or exc
            self._end("error")
            self.abort.set()

    def _loop(self) -> None:
        stale = 0
        while True:
            if self.stop.is_set():
                self._end("stop")
                return
            if self.abort.is_set() or self.drained.is_set():
                return
            if not self.inflight.acquire(self._halted):
                continue
            account = Slot()
            try:
                got = self._cycle(account)
            except BaseException:
                account.strained = True
                raise
            finally:
                self.inflight.release(account.units, strained=account.strained)
            if isinstance(got, str):
                self._end(got)
                return
            fresh, returned = got
            if returned == 0:
                self._end("empty")
                self.drained.set()
                return
            stale = stale + 1 if not fresh else 0
            if stale >= STALE_RECEIVES:
                self._end("stale")
                self.drained.set()
                return

    def _halted(self) -> bool:
        return self.stop.is_set() or self.abort.is_set() or self.drained.is_set()

    def _cycle(self, account: Slot) -> tuple[int, int] | str:
        """One receive and its chunk, in one slot of the adaptive limit: (new messages,
        messages the receive returned), or why this thread ends."""
        n = self.budget.reserve(MAX_BATCH_ENTRIES, self.abort)
        if n == 0:
            return "max"
        if self.bucket is not None:
            got = self.bucket.take(n, self.stop)
            if got < n:
                self.budget.settle(n - got, 0)
                n = got
            if n == 0:
                return "stop"
        room = self.reader.room()
        if room <= 0:
            self.budget.settle(n, 0)
            return "in_flight_limit"
        want = min(n, room)
        if want < n:
            self.budget.settle(n - want, 0)
            if self.bucket is not None:
                self.bucket.refund(n - want)
            n = want
        try:
            fresh, returned = self.reader.receive(n)
        except NorthmigrateError:
            self.budget.settle(n, 0)
            raise
        used = self._chunk(fresh, account)
        self.budget.settle(n, used)
        if self.bucket is not None:
            self.bucket.refund(n - used)
        account.units = used
        return len(fresh), returned

    def _chunk(self, messages: list[Any], account: Slot) -> int:
        """Handle one receive's new messages; returns how many count against ``--max``."""
        if not messages:
            return 0
        letters = [read_letter(m) for m in messages]
        chosen = [letter for letter in letters if matches(letter, self.conditions)]
        others = [letter.message for letter in letters if not matches(letter, self.conditions)]
        self.reader.hold(others)
        if self.dry_run:
            self.reader.hold(letter.message for letter in chosen)
            self._count(read=len(letters), matched=len(chosen), skipped=len(others))
            return len(chosen)
        if not chosen:
            self._count(read=len(letters), skipped=len(others))
            return 0
        try:
            done = self.mover.move(chosen)
        except NorthmigrateError:
            self.reader.hold(letter.message for letter in chosen)  # all still in the DLQ
            self._count(read=len(letters), skipped=len(others))
            raise
        account.strained = done.strained
        moved, failed, undeleted = done.moved, done.failed, done.undeleted
        self.reader.drop(letter.message for letter in moved)
        if self.on_moved is not None:
            self.on_moved([*moved, *undeleted])
        self.reader.hold(letter.message for letter, _ in failed)
        self.reader.hold(letter.message for letter in undeleted)  # visible again at the end
        with self.lock:
            r = self.report
            r.read += len(letters)
            r.skipped += len(others)
            r.matched += len(chosen)
            r.moved += len(moved) + len(undeleted)
            r.delete_failed += len(undeleted)
            r.failed += len(failed)
            for _, reason in failed:
                r.failure_reasons[reason] += 1
        self._notify()
        return len(moved) + len(undeleted)

    def _count(self, *, read: int, matched: int = 0, skipped: int = 0) -> None:
        with self.lock:
            self.report.read += read
            self.report.matched += matched
            self.report.skipped += skipped
        self._notify()

    def _notify(self) -> None:
        if self.progress is not None:
            with self.lock:
                snapshot = self.report.snapshot()
            self.progress(snapshot)


def redrive(
    sqs: SQSClient,
    source_url: str,
    destination_url: str,
    *,
    conditions: Sequence[Condition] = (),
    max_messages: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    concurrency: int = MAX_IN_FLIGHT,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    max_message_size: int = SQS_MAX_MESSAGE_SIZE,
    visibility_timeout: int = REDRIVE_VISIBILITY_S,
    wait_time_s: int = 1,
    max_in_flight: int | None = None,
    run_id: str | None = None,
    on_moved: Callable[[list[Letter]], None] | None = None,
    count_in_flight: bool = True,
    before_release: Callable[[], None] | None = None,
    shared_max: SharedMax | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RedriveReport:
    """Move the DLQ's messages that match ``conditions`` to ``destination_url``; see the
    module docstring. ``--dry-run`` counts what would move and moves nothing; every message
    read and not moved is visible again when this returns (also on error or interruption).
    ``on_moved`` is told the letters of each chunk that reached the destination.
    ``concurrency`` caps the chunks in flight; how many are, up to it, adapts to the
    endpoint (:mod:`northmigrate.aws.inflight`). ``count_in_flight=False`` leaves the
    count of dead letters hidden at the start to the caller (several processes of one run,
    :mod:`northmigrate.dlq.processes`), and ``before_release`` is called before the
    messages held are made visible again (there, once every process is done);
    ``shared_max`` makes ``max_messages`` the limit of all of them together (see
    :class:`SharedMax`).
    """
    if source_url == destination_url:
        raise InputError("the destination of a redrive cannot be the DLQ itself")
    if max_messages is not None and max_messages < 1:
        raise InputError("--max must be at least 1")
    if rate is not None and rate <= 0:
        raise InputError("--rate must be a positive number of messages per second")
    started = monotonic()
    stop = stop or threading.Event()
    report = RedriveReport(
        source=queue_name(source_url),
        destination=queue_name(destination_url),
        mode=MODE_CLIENT,
        dry_run=dry_run,
    )
    report.in_flight = depth(sqs, source_url).in_flight if count_in_flight else 0
    if report.in_flight:
        report.back_within_s = max(back_within_s(sqs, source_url), visibility_timeout)
    reader = Reader(
        sqs,
        source_url,
        visibility_timeout=visibility_timeout,
        wait_time_s=wait_time_s,
        max_in_flight=max_in_flight,
        sleep=sleep,
    )
    mover = Mover(
        sqs,
        source_url,
        destination_url,
        run_id=run_id or secrets.token_hex(8),
        max_message_size=max_message_size,
        clock=clock,
        sleep=sleep,
    )
    bucket = TokenBucket(rate, burst=max(1.0, rate), clock=monotonic, wait=sleep) if rate else None
    run = _Run(
        reader,
        mover,
        report,
        conditions=conditions,
        dry_run=dry_run,
        budget=Budget(max_messages, shared_max),
        bucket=bucket,
        stop=stop,
        progress=progress,
        inflight=InFlight(concurrency, clock=monotonic),
        on_moved=on_moved,
    )
    try:
        threads = max(1, concurrency)
        if threads == 1:
            run.loop()
        else:
            workers = [
                threading.Thread(target=run.loop, name=f"nm-redrive-{i}", daemon=True)
                for i in range(threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)
    finally:
        try:
            if before_release is not None:
                before_release()
        finally:
            reader.release()
        report.duration_s = monotonic() - started
    report.interrupted = report.ended == "stop"
    return report
