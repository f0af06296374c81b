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
from typing import Any

from northmigrate import envelope, records
from northmigrate.envelope import utc_now
from northmigrate.errors import Interrupted, NorthmigrateError
from northmigrate.plugin import Migration
from northmigrate.rejects import RejectsWriter
from northmigrate.sender import SqsSender
from northmigrate.sources import Source, SourceItem
from northmigrate.validation import Checked, OutMessage, Rejection, Tally, Validator

Progress = Callable[["EnqueueReport"], None]
Settled = Callable[[SourceItem, bool], None]
PROGRESS_EVERY = 0.2  # seconds between progress callbacks


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
    interrupted: bool = False
    duration_s: float = 0.0
    largest_message: int = 0
    source_done: int = 0
    source_total: int | None = None
    error: NorthmigrateError | None = None

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.error is None and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        t = self.tally
        out: dict[str, Any] = {}
        if not self.validate_only:
            out["run_id"] = self.run_id
        out |= {
            "source": self.source,
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
            out["interrupted"] = self.interrupted
        return out


def run(
    source: Source,
    migration: Migration[Any],
    *,
    max_message_size: int,
    sqs: Any = None,
    queue_url: str | None = None,
    fifo: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    from_line: int | None = None,
    concurrency: int = 8,
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
    """
    validate_only = sqs is None
    if settled is None and source.checkpointed and not (validate_only or dry_run):
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
    )
    lock = threading.Lock()
    inflight: dict[int, SourceItem] = {}  # id(message) -> its item, until SQS answers
    first_failed: list[int] = []  # the lowest line whose record was not sent
    last_line: int | None = None
    stopped_early = False

    def reject(rejection: Rejection, item: SourceItem | None) -> None:
        if rejects is not None:
            rejects.write(rejection, item)

    def on_result(message: OutMessage, error: str | None) -> None:
        if error is None and settled is None:  # the common case, once per record sent
            with lock:
                report.enqueued += 1
            return
        with lock:
            item = inflight.pop(id(message), None) if settled is not None else None
        try:
            _count_result(message, error)
        finally:
            if settled is not None and item is not None:
                settled(item, error is None)

    def _count_result(message: OutMessage, error: str | None) -> None:
        with lock:
            if error is None:
                report.enqueued += 1
                return
            report.failed += 1
            if message.line is not None and (not first_failed or message.line < first_failed[0]):
                first_failed[:] = [message.line]
            rejection = Rejection(message.line, message.record_id, None, error)
            report.tally.reject(rejection)
            if rejects is not None:
                rejects.write(rejection, None, raw=_record_text(message.body))

    sender = None
    if not validate_only and not dry_run:
        assert queue_url is not None
        sender = SqsSender(
            sqs,
            queue_url,
            on_result=on_result,
            concurrency=concurrency,
            max_batch_bytes=max_message_size,
        )
    started = time.monotonic()
    last_progress = 0.0
    sent = 0
    try:
        for item in source:
            if stop is not None and stop.is_set():
                report.interrupted = stopped_early = True
                break
            if from_line is not None and item.line is not None and item.line < from_line:
                continue
            last_line = item.line if item.line is not None else last_line
            checked: Checked = validator.check(item)
            with lock:
                report.tally.add(checked)
                if checked.rejection is not None:
                    reject(checked.rejection, item)
            if checked.message is not None and sender is not None:
                if settled is not None:
                    with lock:
                        inflight[id(checked.message)] = item
                sender.submit(checked.message)
                if sender.broken is not None:
                    report.error = sender.broken
                    stopped_early = True
                    break
            elif settled is not None:
                settled(item, checked.message is None)  # rejected: accounted; else not sent
            if checked.kind == "eligible":
                sent += 1
                if limit is not None and sent >= limit:
                    stopped_early = True
                    break
            now = time.monotonic()
            if progress is not None and now - last_progress >= PROGRESS_EVERY:
                last_progress = now
                report.source_done, report.source_total = source.progress()
                report.duration_s = now - started
                progress(report)
    except (KeyboardInterrupt, Interrupted):  # Interrupted: a read stopped by the signal
        report.interrupted = stopped_early = True
    except NorthmigrateError as exc:  # the source broke part-way
        report.error = exc
        stopped_early = True
    finally:
        if sender is not None:
            try:
                sender.close()
            except KeyboardInterrupt:
                report.interrupted = True
            if sender.broken is not None and report.error is None:
                report.error = sender.broken
        source.close()
    report.duration_s = time.monotonic() - started
    report.largest_message = validator.largest_message
    report.source_done, report.source_total = source.progress()
    if not validate_only:
        candidates = list(first_failed)
        if stopped_early and last_line is not None:
            candidates.append(last_line + 1)
        report.resume_from_line = min(candidates) if candidates else None
    return report


def _record_text(body: str) -> str | None:
    """The record part of an envelope body, for the rejects file (every number exact)."""
    data = envelope.load_body(body)
    if data is None or not isinstance(data.get("record"), dict):
        return None
    return records.dumps(data["record"])
