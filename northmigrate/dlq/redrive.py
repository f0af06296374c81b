"""``dlq redrive``: move dead letters back to the main queue (or another), losing none.

Client-side move, per chunk of up to 10 messages: receive from the DLQ (hidden for
``visibility_timeout``), ``SendMessageBatch`` to the destination, and ``DeleteMessageBatch``
on the DLQ only for the entries the destination confirmed. A crash at any point leaves
each message in the DLQ, in the destination, or in both (the worker is idempotent), never in
neither. Messages that do not match ``--where``, that could not be sent, or whose delete
failed are held hidden until the run ends and then made visible again at once (the
technique of :mod:`northmigrate.dlq.peek`), so one run sees each message once.

On the way back each message keeps its body and message attributes, except the
``northmigrate.reason``/``northmigrate.failure_kind`` attributes: the reason already is the
last entry of the envelope's ``failures`` (its history), and the envelope gets a
``redrives`` entry (from, to, when, the reason it had). On a FIFO destination the message
group id is kept, and the deduplication id is derived from the message id and this run's
id: a retried send within one run is deduplicated, a later redrive of the same message is
not.

``native_redrive`` uses SQS's own ``StartMessageMoveTask`` instead (real AWS; no filters),
following it with ``ListMessageMoveTasks`` and cancelling it when stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from northmigrate import envelope
from northmigrate.aws import AWS_EXCEPTIONS, aws_errors, is_fatal, translate
from northmigrate.backoff import TokenBucket
from northmigrate.batching import MAX_BATCH_ENTRIES, batches
from northmigrate.config import SQS_MAX_MESSAGE_SIZE
from northmigrate.dlq.letters import Letter, read_letter
from northmigrate.dlq.peek import (
    STALE_RECEIVES,
    Reader,
    back_within_s,
    depth,
    hidden_note,
    is_fifo,
    queue_name,
)
from northmigrate.dlq.where import Condition, matches
from northmigrate.envelope import utc_now
from northmigrate.errors import AwsError, InputError, NorthmigrateError

log = logging.getLogger("northmigrate.dlq")

MODE_CLIENT = "client"
MODE_NATIVE = "native"
REDRIVE_VISIBILITY_S = 300
SEND_ATTEMPTS = 5
DELETE_ATTEMPTS = 5
NATIVE_POLL_S = 2.0
NATIVE_MAX_RATE = 500
_DROPPED_ATTRIBUTES = {envelope.ATTR_REASON, envelope.ATTR_FAILURE_KIND}
_NATIVE_DONE = {"COMPLETED", "CANCELLED", "FAILED"}

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

    @property
    def hidden_note(self) -> str | None:
        return hidden_note(self.in_flight, self.back_within_s)

    def snapshot(self) -> RedriveReport:
        return replace(self, failure_reasons=Counter(self.failure_reasons))

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
        }


# -- the destination -----------------------------------------------------------------------


def queue_arn(sqs: Any, url: str) -> str:
    with aws_errors(f"queue {queue_name(url)}"):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attrs["Attributes"]["QueueArn"])


def default_destination(sqs: Any, dlq_url: str, main_url: str) -> str:
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


# -- the move of one chunk -----------------------------------------------------------------


@dataclass
class _Entry:
    letter: Letter
    request: dict[str, Any]
    size: int


def redriven_body(body: str, entry: dict[str, Any]) -> str:
    """The envelope with ``entry`` appended to its ``redrives``; any other body unchanged.

    Works on the JSON itself so that keys this version does not know travel on untouched,
    and every number keeps its exact value (see northmigrate.envelope).
    """
    return envelope.with_history(body, "redrives", entry)


class Mover:
    """Sends a chunk of letters to the destination and deletes the confirmed ones."""

    def __init__(
        self,
        sqs: Any,
        source_url: str,
        destination_url: str,
        *,
        run_id: str,
        max_message_size: int = SQS_MAX_MESSAGE_SIZE,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs = sqs
        self.source_url = source_url
        self.destination_url = destination_url
        self.run_id = run_id
        self.max_message_size = max_message_size
        self.fifo = is_fifo(destination_url)
        self._clock = clock
        self._sleep = sleep

    def entry(self, index: int, letter: Letter) -> _Entry:
        message = letter.message
        attrs = {
            k: dict(v)
            for k, v in message.message_attributes.items()
            if k not in _DROPPED_ATTRIBUTES
        }
        history = envelope.redrive_entry(
            source=queue_name(self.source_url),
            destination=queue_name(self.destination_url),
            at=self._clock(),
        )
        history["reason"] = letter.reason
        body = redriven_body(message.body, history)
        size = len(body.encode()) + envelope.attributes_size(attrs)
        if size > self.max_message_size:  # the history would not fit: send it as it was
            body = message.body
            size = len(body.encode()) + envelope.attributes_size(attrs)
        request: dict[str, Any] = {"Id": str(index), "MessageBody": body}
        if attrs:
            request["MessageAttributes"] = attrs
        if self.fifo:
            group = message.group_id or letter.record_id or message.message_id or "northmigrate"
            request["MessageGroupId"] = group[:128]
            request["MessageDeduplicationId"] = hashlib.sha256(
                f"{self.run_id}\0{message.message_id}".encode()
            ).hexdigest()
        return _Entry(letter, request, size)

    def move(
        self, letters: Sequence[Letter]
    ) -> tuple[list[Letter], list[tuple[Letter, str]], list[Letter]]:
        """(moved, failed with reason, sent but not deleted). Raises AwsError when the
        destination or the DLQ cannot be used at all (nothing is lost: the caller gives
        the chunk back)."""
        entries = [self.entry(i, letter) for i, letter in enumerate(letters)]
        moved: list[Letter] = []
        failed: list[tuple[Letter, str]] = []
        not_deleted: list[Letter] = []
        for batch in batches(entries, self.max_message_size, MAX_BATCH_ENTRIES):
            confirmed, refused = self._send(batch)
            failed.extend(refused)
            deleted, undeleted = self._delete([e.letter for e in confirmed])
            moved.extend(deleted)
            not_deleted.extend(undeleted)
        return moved, failed, not_deleted

    def _send(self, batch: list[_Entry]) -> tuple[list[_Entry], list[tuple[Letter, str]]]:
        pending = {e.request["Id"]: e for e in batch}
        confirmed: list[_Entry] = []
        refused: list[tuple[Letter, str]] = []
        reason = "not confirmed"
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                response = self.sqs.send_message_batch(
                    QueueUrl=self.destination_url,
                    Entries=[e.request for e in pending.values()],
                )
            except AWS_EXCEPTIONS as exc:
                # A timeout may have sent them: sending again is at worst a duplicate.
                if is_fatal(exc):
                    raise translate(
                        exc, f"SendMessageBatch to {queue_name(self.destination_url)}"
                    ) from exc
                reason = translate(exc, "SendMessageBatch").message
                self._sleep(min(2.0, 0.1 * 2**attempt))
                continue
            for ok in response.get("Successful", []):
                entry = pending.pop(str(ok.get("Id")), None)
                if entry is not None:
                    confirmed.append(entry)
            for bad in response.get("Failed", []):
                reason = f"{bad.get('Code', 'Failed')}: {bad.get('Message', '')}".rstrip(": ")
                if bad.get("SenderFault"):
                    entry = pending.pop(str(bad.get("Id")), None)
                    if entry is not None:
                        refused.append((entry.letter, reason))
            if not pending:
                break
            self._sleep(min(2.0, 0.1 * 2**attempt))
        refused.extend((e.letter, reason) for e in pending.values())
        return confirmed, refused

    def _delete(self, letters: list[Letter]) -> tuple[list[Letter], list[Letter]]:
        if not letters:
            return [], []
        pending = {str(i): letter for i, letter in enumerate(letters)}
        deleted: list[Letter] = []
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            try:
                response = self.sqs.delete_message_batch(
                    QueueUrl=self.source_url,
                    Entries=[
                        {"Id": i, "ReceiptHandle": letter.message.receipt_handle}
                        for i, letter in pending.items()
                    ],
                )
            except AWS_EXCEPTIONS as exc:
                if is_fatal(exc):
                    break
                self._sleep(min(2.0, 0.1 * 2**attempt))
                continue
            for ok in response.get("Successful", []):
                letter = pending.pop(str(ok.get("Id")), None)
                if letter is not None:
                    deleted.append(letter)
            for bad in response.get("Failed", []):
                if bad.get("SenderFault"):  # e.g. the receipt handle is no longer valid
                    pending.pop(str(bad.get("Id")), None)  # it stays in the DLQ as well
            if not pending:
                break
            self._sleep(min(2.0, 0.1 * 2**attempt))
        gone = {id(letter) for letter in deleted}
        undeleted = [letter for letter in letters if id(letter) not in gone]
        if undeleted:
            log.warning(
                "%d messages were sent to %s but could not be deleted from %s: they are in "
                "both queues (harmless: the worker is idempotent)",
                len(undeleted),
                queue_name(self.destination_url),
                queue_name(self.source_url),
            )
        return deleted, undeleted


# -- the client-side run -------------------------------------------------------------------


class _Budget:
    """``--max``: messages reserved by the threads before they receive, committed when they
    are moved (or matched, in a dry run), given back otherwise. Never over the limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.done = 0
        self.reserved = 0
        self._cond = threading.Condition()

    def reserve(self, n: int, stop: threading.Event) -> int:
        with self._cond:
            while True:
                if self.limit is None:
                    return n
                free = self.limit - self.done - self.reserved
                if free > 0:
                    got = min(n, free)
                    self.reserved += got
                    return got
                if self.reserved == 0 or stop.is_set():
                    return 0
                self._cond.wait(0.1)  # others may give theirs back

    def settle(self, reserved: int, used: int) -> None:
        if self.limit is None:
            return
        with self._cond:
            self.reserved -= reserved
            self.done += used
            self._cond.notify_all()

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.done >= self.limit


class _Run:
    def __init__(
        self,
        reader: Reader,
        mover: Mover,
        report: RedriveReport,
        *,
        conditions: Sequence[Condition],
        dry_run: bool,
        budget: _Budget,
        bucket: TokenBucket | None,
        stop: threading.Event,
        progress: Progress | None,
    ) -> None:
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
            if self.abort.is_set():
                return
            n = self.budget.reserve(MAX_BATCH_ENTRIES, self.abort)
            if n == 0:
                self._end("max")
                return
            if self.bucket is not None:
                got = self.bucket.take(n, self.stop)
                if got < n:
                    self.budget.settle(n - got, 0)
                    n = got
                if n == 0:
                    self._end("stop")
                    return
            room = self.reader.room()
            if room <= 0:
                self.budget.settle(n, 0)
                self._end("in_flight_limit")
                return
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
            used = self._chunk(fresh)
            self.budget.settle(n, used)
            if self.bucket is not None:
                self.bucket.refund(n - used)
            if returned == 0:
                self._end("empty")
                return
            stale = stale + 1 if not fresh else 0
            if stale >= STALE_RECEIVES:
                self._end("stale")
                return

    def _chunk(self, messages: list[Any]) -> int:
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
            moved, failed, undeleted = self.mover.move(chosen)
        except NorthmigrateError:
            self.reader.hold(letter.message for letter in chosen)  # all still in the DLQ
            self._count(read=len(letters), skipped=len(others))
            raise
        self.reader.drop(letter.message for letter in moved)
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
    sqs: Any,
    source_url: str,
    destination_url: str,
    *,
    conditions: Sequence[Condition] = (),
    max_messages: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    concurrency: int = 8,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    max_message_size: int = SQS_MAX_MESSAGE_SIZE,
    visibility_timeout: int = REDRIVE_VISIBILITY_S,
    wait_time_s: int = 1,
    max_in_flight: int | None = None,
    run_id: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RedriveReport:
    """Move the DLQ's messages that match ``conditions`` to ``destination_url``; see the
    module docstring. ``--dry-run`` counts what would move and moves nothing; every message
    read and not moved is visible again when this returns (also on error or interruption).
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
    report.in_flight = depth(sqs, source_url).in_flight
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
        budget=_Budget(max_messages),
        bucket=bucket,
        stop=stop,
        progress=progress,
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
        reader.release()
        report.duration_s = monotonic() - started
    report.interrupted = report.ended == "stop"
    return report


# -- the native move task ------------------------------------------------------------------


def native_redrive(
    sqs: Any,
    source_url: str,
    destination_url: str,
    *,
    rate: float | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    poll_s: float = NATIVE_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RedriveReport:
    """Move every message with SQS's ``StartMessageMoveTask`` (real AWS only: no filters,
    no ``--max``, no dry run), following the task until it ends; when ``stop`` is set (or
    the caller is interrupted) the task is cancelled. SQS itself caps it at 500 messages/s.
    """
    started = monotonic()
    stop = stop or threading.Event()
    report = RedriveReport(
        source=queue_name(source_url), destination=queue_name(destination_url), mode=MODE_NATIVE
    )
    source_arn = queue_arn(sqs, source_url)
    request: dict[str, Any] = {
        "SourceArn": source_arn,
        "DestinationArn": queue_arn(sqs, destination_url),
    }
    if rate is not None:
        request["MaxNumberOfMessagesPerSecond"] = max(1, min(NATIVE_MAX_RATE, int(rate)))
    try:
        handle = str(sqs.start_message_move_task(**request)["TaskHandle"])
    except AWS_EXCEPTIONS as exc:
        first = translate(exc, "StartMessageMoveTask").message.splitlines()[0][:200]
        raise AwsError(
            f"the native redrive could not start: {first}",
            hint="emulators such as moto lack message move tasks: run without --native",
        ) from exc
    try:
        while True:
            if stop.is_set():
                _cancel(sqs, handle, report)
                report.interrupted = True
                report.ended = "stop"
                break
            with aws_errors("ListMessageMoveTasks"):
                results = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get(
                    "Results", []
                )
            task = results[0] if results else {}
            report.task_status = str(task.get("Status", "")) or None
            report.moved = int(task.get("ApproximateNumberOfMessagesMoved", report.moved))
            to_move = task.get("ApproximateNumberOfMessagesToMove")
            report.matched = int(to_move) if to_move is not None else report.moved
            if progress is not None:
                progress(report.snapshot())
            if report.task_status in _NATIVE_DONE:
                report.ended = report.task_status.lower()
                if report.task_status == "FAILED":
                    why = task.get("FailureReason", "no reason given")
                    report.failed = max(0, report.matched - report.moved)
                    report.error = AwsError(f"the message move task failed: {why}")
                break
            if poll_s > 0:
                if stop.wait(poll_s):
                    continue
            else:
                sleep(0)
    except BaseException:  # a second Ctrl-C: do not leave the task running
        if report.task_status not in _NATIVE_DONE and not report.interrupted:
            _cancel(sqs, handle, report)
        raise
    finally:
        report.duration_s = monotonic() - started
    return report


def _cancel(sqs: Any, handle: str, report: RedriveReport) -> None:
    try:
        response = sqs.cancel_message_move_task(TaskHandle=handle)
    except AWS_EXCEPTIONS as exc:
        log.warning("could not cancel the message move task: %s", translate(exc, "cancel").message)
        return
    report.task_status = "CANCELLING"
    report.moved = int(response.get("ApproximateNumberOfMessagesMoved", report.moved))
