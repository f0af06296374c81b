"""validate and enqueue: read a source, check every item, send each eligible record once.

Resuming: an interrupted or failed enqueue reports ``resume_from_line``, the first line of
the source not yet accounted for. Running again from the start is always safe (a repeated
record is a repeated message, and the worker's writes are idempotent: the cost is one more
message per record); ``--from-line N`` skips what was already sent.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate import records
from northmigrate.aws.inflight import MAX_IN_FLIGHT
from northmigrate.enqueue.sender import SqsSender
from northmigrate.errors import Interrupted, NorthmigrateError
from northmigrate.plugin import Migration
from northmigrate.records import envelope
from northmigrate.records.envelope import utc_now
from northmigrate.records.rejects import RejectsWriter
from northmigrate.records.validation import Checked, OutMessage, Rejection, Tally, Validator
from northmigrate.sources import Source, SourceItem
from northmigrate.sources.names import is_s3_prefix, s3_uri
from northmigrate.sources.resume_key import record_ids

Progress = Callable[["EnqueueReport"], None]
Settled = Callable[[SourceItem, bool], None]
PROGRESS_EVERY = 0.2  # seconds between progress callbacks


if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def new_run_id() -> str:
    return f"{utc_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class EnqueueReport:
    """The account of one validate or enqueue run (the JSON summary, see to_dict)."""

    run_id: str = ""
    source: str = ""
    tally: Tally = field(default_factory=Tally)
    enqueued: int = 0
    failed: int = 0
    dry_run: bool = False
    validate_only: bool = False
    rejects_file: str | None = None
    resume_from_line: int | None = None
    resume_from_object: str | None = None  # of an S3 prefix: the object the line is in
    interrupted: bool = False
    duration_s: float = 0.0
    largest_message: int = 0
    source_done: int = 0
    source_total: int | None = None
    shard: str | None = None  # "I/N" of --shard: this run read only that part
    listing: str | None = None  # an S3 source's listing digest (--listing)
    error: NorthmigrateError | None = None

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.error is None and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        t = self.tally
        out: dict[str, Any] = {}
        if not self.validate_only:
            out["run_id"] = self.run_id
        out["source"] = self.source
        if self.shard is not None:
            out["shard"] = self.shard
        if self.listing is not None:
            out["listing"] = self.listing
        out |= {
            "read": t.read,
            "valid": t.valid,
            "eligible": t.eligible,
            "ineligible": t.ineligible,
            "invalid": t.invalid,
            "duplicates": t.duplicates,
        }
        if not self.validate_only:
            out |= {"enqueued": self.enqueued, "failed": self.failed, "dry_run": self.dry_run}
        out |= {
            "errors": [e.to_dict() for e in t.errors],
            "errors_total": t.errors_total,
            "rejects_file": self.rejects_file,
            "duration_s": round(self.duration_s, 3),
        }
        if not self.validate_only:
            out["resume_from_line"] = self.resume_from_line
            if is_s3_prefix(self.source):
                out["resume_from_object"] = self.resume_from_object
        out["interrupted"] = self.interrupted  # validate's too: a signal ended the read
        return out


def run(
    source: Source,
    migration: Migration[Any],
    *,
    max_message_size: int,
    sqs: SQSClient | None = None,
    queue_url: str | None = None,
    fifo: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    from_line: int | None = None,
    from_object: str | None = None,
    concurrency: int = MAX_IN_FLIGHT,
    rejects: RejectsWriter | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    stop: threading.Event | None = None,
    settled: Settled | None = None,
) -> EnqueueReport:
    """Validate ``source``; unless ``sqs`` is None or ``dry_run``, send the eligible records.

    Never raises for a bad record. A source that breaks part-way, or an AWS connection that
    stays down, ends the run early: the report then carries ``error`` and ``resume_from_line``.
    Setting ``stop`` (the CLI does on Ctrl-C) or a KeyboardInterrupt stops reading, sends
    what was already validated, and returns a report with ``interrupted`` set.

    ``settled(item, ok)``, when given, is called once for every item checked, as soon as it
    is accounted for: ``ok`` True when it was rejected (invalid, ineligible, duplicate) or
    its message was confirmed by SQS, False when it was not sent (a failed send, a dry run).
    It may be called from the sending threads. Without it, a run that sends settles every
    item with ``source.settle`` when the source keeps a checkpoint (``source.checkpointed``:
    a table scan recording how far it can safely resume from); given, it is called instead,
    and may call ``source.settle`` itself.

    ``from_line`` skips the items before that line; with ``from_object`` (a key of an S3
    prefix's objects), the objects before that key too, and the lines before ``from_line``
    in it only (``resume_from_object`` and ``resume_from_line`` of an unfinished run).

    ``concurrency`` caps the batches in flight; how many are, up to it, adapts to the
    endpoint (:mod:`northmigrate.aws.inflight`).
    """
    validate_only = sqs is None
    sending = not validate_only and not dry_run
    if settled is None and sending and source.checkpointed:
        settled = source.settle
    report = EnqueueReport(
        run_id=run_id or new_run_id(),
        source=source.name,
        dry_run=dry_run,
        validate_only=validate_only,
        rejects_file=str(rejects.path) if rejects else None,
    )
    validator = Validator(
        migration,
        max_message_size=max_message_size,
        run_id=report.run_id,
        source_name=source.name,
        fifo=fifo,
        ids=record_ids(migration),
    )
    job = Enqueue(
        source,
        validator,
        report,
        rejects=rejects,
        settled=settled,
        limit=limit,
        start=_Start.of(source.name, from_line, from_object),
        progress=progress,
        stop=stop,
    )
    sender = None
    if sending:
        assert sqs is not None and queue_url is not None
        sender = SqsSender(
            sqs,
            queue_url,
            on_result=job.on_result,
            concurrency=concurrency,
            max_batch_bytes=max_message_size,
        )
    return job.run(sender)


class Enqueue:
    """One run of ``run``: the calling thread reads and checks the items and submits the
    messages; the sender's threads report each message's outcome (``on_result``). The
    report, the items in flight and the first line not sent are shared under one lock.

    The loop in ``_read`` runs once per record: it keeps to local names and takes the lock
    once per item (once more when items are settled), and ``on_result`` once per message,
    as the client CPU per record is benchmarked (``bench/enqueue_cpu.py``).
    """

    def __init__(
        self,
        source: Source,
        validator: Validator,
        report: EnqueueReport,
        *,
        rejects: RejectsWriter | None,
        settled: Settled | None,
        limit: int | None,
        start: _Start | None,
        progress: Progress | None,
        stop: threading.Event | None,
    ) -> None:
        self.source = source
        self.validator = validator
        self.report = report
        self.rejects = rejects
        self.settled = settled
        self.limit = limit
        self.start = start
        self.progress = progress
        self.stop = stop
        self._lock = threading.Lock()
        self._inflight: dict[int, SourceItem] = {}  # id(message) -> its item, until SQS answers
        # the first (origin, line) whose record was not sent; the last item read's
        self._first_failed: tuple[str, int] | None = None
        self._last: tuple[str, int] | None = None
        self._stopped_early = False

    def run(self, sender: SqsSender | None) -> EnqueueReport:
        started = time.monotonic()
        try:
            self._read(sender, started)
        except (KeyboardInterrupt, Interrupted):  # Interrupted: a read stopped by the signal
            self.report.interrupted = self._stopped_early = True
        except NorthmigrateError as exc:  # the source broke part-way
            self.report.error = exc
            self._stopped_early = True
        finally:
            self._close(sender)
        self._finish(started)
        return self.report

    def _read(self, sender: SqsSender | None, started: float) -> None:
        """Check every item and submit each eligible message; return when the source ends
        or the run stops early (``stop`` set, the limit reached, the sender broken)."""
        source, report, lock, settled = self.source, self.report, self._lock, self.settled
        check, tally, inflight = self.validator.check, report.tally, self._inflight
        stop, start, limit, progress = self.stop, self.start, self.limit, self.progress
        last_progress = 0.0
        sent = 0
        last: SourceItem | None = None
        when_idle = getattr(source, "when_idle", None)
        if sender is not None and callable(when_idle):  # a slow pipe: send what came
            when_idle(sender.flush)
        try:
            for item in source:
                if stop is not None and stop.is_set():
                    report.interrupted = self._stopped_early = True
                    return
                if start is not None:
                    if start.before(item):
                        continue
                    start = None if start.passed_by(item) else start
                if item.line is not None:
                    last = item
                checked: Checked = check(item)
                with lock:
                    tally.add(checked)
                    if checked.rejection is not None:
                        self._reject(checked.rejection, item)
                if checked.message is not None and sender is not None:
                    if settled is not None:
                        with lock:
                            inflight[id(checked.message)] = item
                    sender.submit(checked.message)
                    if sender.broken is not None:
                        report.error = sender.broken
                        self._stopped_early = True
                        return
                elif settled is not None:
                    settled(item, checked.message is None)  # rejected: accounted; else not sent
                if checked.kind == "eligible":
                    sent += 1
                    if limit is not None and sent >= limit:
                        self._stopped_early = True
                        return
                now = time.monotonic()
                if progress is not None and now - last_progress >= PROGRESS_EVERY:
                    last_progress = now
                    report.source_done, report.source_total = source.progress()
                    report.duration_s = now - started
                    progress(report)
        finally:
            if last is not None and last.line is not None:
                self._last = (last.origin or "", last.line)

    def _reject(self, rejection: Rejection, item: SourceItem | None) -> None:
        if self.rejects is not None:
            self.rejects.write(rejection, item)

    def on_result(self, message: OutMessage, error: str | None) -> None:
        """The sender's callback (on its threads): SQS confirmed ``message`` (``error``
        None), or it was not sent."""
        settled = self.settled
        if error is None and settled is None:  # the common case, once per record sent
            with self._lock:
                self.report.enqueued += 1
            return
        with self._lock:
            item = self._inflight.pop(id(message), None) if settled is not None else None
        try:
            self._count_result(message, error)
        finally:
            if settled is not None and item is not None:
                settled(item, error is None)

    def _count_result(self, message: OutMessage, error: str | None) -> None:
        report = self.report
        with self._lock:
            if error is None:
                report.enqueued += 1
                return
            report.failed += 1
            first = self._first_failed
            if message.line is not None:
                where = (message.origin or "", message.line)
                if first is None or _order(where) < _order(first):
                    self._first_failed = where
            rejection = Rejection(message.line, message.record_id, None, error)
            report.tally.reject(rejection)
            if self.rejects is not None:
                self.rejects.write(rejection, None, raw=_record_text(message.body))

    def _close(self, sender: SqsSender | None) -> None:
        """Wait for the messages in flight, then close the source."""
        report = self.report
        if sender is not None:
            try:
                sender.close()
            except KeyboardInterrupt:
                report.interrupted = True
            if sender.broken is not None and report.error is None:
                report.error = sender.broken
        self.source.close()

    def _finish(self, started: float) -> None:
        report = self.report
        report.duration_s = time.monotonic() - started
        report.largest_message = self.validator.largest_message
        report.source_done, report.source_total = self.source.progress()
        if not report.validate_only:
            candidates = [] if self._first_failed is None else [self._first_failed]
            if self._stopped_early and self._last is not None:
                candidates.append((self._last[0], self._last[1] + 1))
            if candidates:
                origin, report.resume_from_line = min(candidates, key=_order)
                if is_s3_prefix(report.source):
                    report.resume_from_object = s3_uri(origin)[1]


def _order(where: tuple[str, int]) -> tuple[bytes, int]:
    """Where an item is in its source: an S3 prefix reads its objects in key order."""
    return where[0].encode("utf-8"), where[1]


@dataclass(frozen=True, slots=True)
class _Start:
    """Where a resumed run starts: a line (of the only file or object), or a line of one
    object of an S3 prefix, the objects before it skipped whole."""

    line: int
    origin: str | None

    @classmethod
    def of(cls, name: str, line: int | None, key: str | None) -> _Start | None:
        if key is None:
            return None if line is None else cls(line, None)
        bucket = s3_uri(name)[0]
        return cls(line or 1, f"s3://{bucket}/{key}")

    def before(self, item: SourceItem) -> bool:
        if item.line is None:
            return False
        if self.origin is None:
            return item.line < self.line
        return _order((item.origin or "", item.line)) < _order((self.origin, self.line))

    def passed_by(self, item: SourceItem) -> bool:
        """Whether every item after ``item`` is past the start (items come in order)."""
        return self.origin is not None and not self.before(item)


def _record_text(body: str) -> str | None:
    """The record part of an envelope body, for the rejects file (every number exact)."""
    data = envelope.load_body(body)
    if data is None or not isinstance(data.get("record"), dict):
        return None
    return records.dumps(data["record"])
