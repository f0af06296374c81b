"""reconcile: account for every record of a source.

Each record read is exactly one of: **migrated** (the plugin's ``verify`` says it is present
and correct in the target), **rejected** (invalid, ineligible or a duplicate, as ``validate``
says), **dead-lettered** (its message is in the DLQ), **in queue** (its message is in the main
queue), **unsettled** (none of those, while the queues still hold messages it could be in),
or **missing**. The counts add up to ``expected``, the number of records read.

The DLQ is read without being consumed (every message read is visible again at once). The
main queue is *not* read unless asked (``read_queue``): SQS has no peek, and every read of a
message counts as one receive against the queue's redrive policy. Without reading it,
reconcile knows only the main queue's depth: when it holds nothing (visible, in flight or
delayed) and the DLQ has nothing in flight, a record found nowhere is missing; otherwise it
is unsettled, and the report says to run again once the queue has drained (or with
``read_queue``, which looks at each message; the queue's receive headroom absorbs it).
A message another consumer holds in flight cannot be read either way; ``in_flight_unseen``
counts them.

**The receives a read takes.** Reading the main queue uses only its receive headroom:
``maxReceiveCount`` of its redrive policy minus ``receive_reserve`` (the worker's tries,
``queue.max_receive_count``). When a message read has ``receive_reserve`` receives left or
fewer, its record is unsettled (not in queue), the read stops there, and
``read_queue_stopped`` says so: reading it again could leave the worker no receive to try it
with, and SQS would move it to the DLQ untried. A later run still reads (and so costs a
receive) the messages of its first receive before it stops: run a worker, then reconcile.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from northmigrate.aws.clients import AWS_EXCEPTIONS, AwsClients, aws_errors
from northmigrate.aws.queues import Queues
from northmigrate.aws.sqs.reader import peek
from northmigrate.plugin import Migration, MigrationContext
from northmigrate.records import envelope
from northmigrate.records.validation import Validator
from northmigrate.redact import Scrubber, error_text, sensitive_leaves
from northmigrate.sources import Source
from northmigrate.sources.resume_key import record_ids

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_LISTED_MISSING = 1000
# Reads a queue without consuming it: {record_id: reason or None}.
Peek = Callable[["SQSClient", str], dict[str, str | None]]


@dataclass
class ReconcileReport:
    source: str = ""
    expected: int = 0
    migrated: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    in_queue: int = 0
    missing: list[str] = field(default_factory=list)
    missing_total: int = 0
    rejected_by_kind: Counter[str] = field(default_factory=Counter)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    in_flight_unseen: int = 0
    duration_s: float = 0.0
    read_queue: bool = False
    main_depth: int = 0  # messages in the main queue (visible, in flight, delayed)
    unsettled: list[str] = field(default_factory=list)
    unsettled_total: int = 0
    verify_errors: Counter[str] = field(default_factory=Counter)  # reason -> records
    stopped_at: tuple[int, int] | None = None  # (receives, maxReceiveCount): read stopped

    @property
    def ok(self) -> bool:
        return self.missing_total == 0 and self.unsettled_total == 0

    def add_unsettled(self, record_id: str) -> None:
        self.unsettled_total += 1
        if len(self.unsettled) < MAX_LISTED_MISSING:
            self.unsettled.append(record_id)

    def add_missing(self, record_id: str) -> None:
        self.missing_total += 1
        if len(self.missing) < MAX_LISTED_MISSING:
            self.missing.append(record_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "expected": self.expected,
            "migrated": self.migrated,
            "rejected": self.rejected,
            "dead_lettered": self.dead_lettered,
            "in_queue": self.in_queue,
            "missing": self.missing,
            "missing_total": self.missing_total,
            "ok": self.ok,
            "rejected_by_kind": dict(self.rejected_by_kind),
            "dead_letter_reasons": [
                {"reason": r, "count": c} for r, c in self.dead_letter_reasons.most_common()
            ],
            "in_flight_unseen": self.in_flight_unseen,
            "unsettled": self.unsettled,
            "unsettled_total": self.unsettled_total,
            "verify_errors": [
                {"reason": r, "count": c} for r, c in self.verify_errors.most_common()
            ],
            "read_queue": self.read_queue,
            "read_queue_stopped": None
            if self.stopped_at is None
            else {"receives": self.stopped_at[0], "max_receive_count": self.stopped_at[1]},
            "main_queue_depth": self.main_depth,
            "duration_s": round(self.duration_s, 3),
        }


Verdict = bool | str  # True/False: verify's answer; a str: why verify could not answer


def verify_records(
    migration: Migration[Any], ctx: MigrationContext, chunk: list[BaseModel]
) -> list[Verdict]:
    """verify's answer for each record; a plugin error is the (scrubbed) reason for the
    records it concerns, never the end of the run (an AWS error still is: exit 3)."""

    def failed(exc: BaseException, records: list[BaseModel]) -> str:
        scrubber = Scrubber.for_values(
            leaf for record in records for leaf in sensitive_leaves(record, migration.sensitive)
        )
        return scrubber.scrub(f"{type(exc).__name__}: {error_text(exc)}")

    with aws_errors(f"verify records of {migration.name} in the target"):
        if migration.verify_batch is not None:
            try:
                answers = list(migration.verify_batch(chunk, ctx))
            except AWS_EXCEPTIONS:
                raise
            except Exception as exc:
                return [failed(exc, chunk)] * len(chunk)
            if len(answers) != len(chunk):
                why = f"verify_batch gave {len(answers)} answers for {len(chunk)} records"
                return [why] * len(chunk)
            return [bool(v) for v in answers]
        assert migration.verify is not None
        verdicts: list[Verdict] = []
        for record in chunk:
            try:
                verdicts.append(bool(migration.verify(record, ctx)))
            except AWS_EXCEPTIONS:
                raise
            except Exception as exc:
                verdicts.append(failed(exc, [record]))
        return verdicts


@dataclass
class QueueRead:
    """What a read of the main queue found: the records of the messages read, and those
    whose messages have too few receives left (the read stopped at them)."""

    found: set[str] = field(default_factory=set)
    near_limit: set[str] = field(default_factory=set)
    stopped_at: tuple[int, int] | None = None


def max_receive_count(queues: Queues, url: str) -> int | None:
    """The ``maxReceiveCount`` of a queue's redrive policy; None without one."""
    raw = queues.attributes(url, ["RedrivePolicy"]).get("RedrivePolicy")
    try:
        return int(json.loads(raw)["maxReceiveCount"]) if raw else None
    except (ValueError, KeyError, TypeError):
        return None


def read_main_queue(sqs: SQSClient, url: str, limit: int | None, reserve: int) -> QueueRead:
    """Read the main queue without consuming it, stopping at the first chunk that holds a
    message with ``reserve`` receives left or fewer (``limit`` is ``maxReceiveCount``)."""
    read = QueueRead()
    for chunk in peek(sqs, url):
        for message in chunk:
            body = envelope.load_body(message.body)
            record_id = body.get("record_id") if body else None
            if not isinstance(record_id, str):
                record_id = message.string_attribute(envelope.ATTR_RECORD_ID)
            near = limit is not None and limit - message.receive_count <= reserve
            if record_id is not None:
                (read.near_limit if near else read.found).add(record_id)
            if near and limit is not None:
                seen = read.stopped_at[0] if read.stopped_at else 0
                read.stopped_at = (max(seen, message.receive_count), limit)
        if read.stopped_at is not None:
            break  # the generator gives back everything it read
    return read


def _chunks(
    source: Source, validator: Validator, report: ReconcileReport, size: int
) -> Iterator[list[tuple[str, BaseModel]]]:
    chunk: list[tuple[str, BaseModel]] = []
    for item in source:
        checked = validator.check(item)
        report.expected += 1
        if checked.kind != "eligible" or checked.record is None or checked.record_id is None:
            report.rejected += 1
            report.rejected_by_kind[checked.kind] += 1
            continue
        chunk.append((checked.record_id, checked.record))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reconcile(
    source: Source,
    migration: Migration[Any],
    clients: AwsClients,
    queues: Queues,
    options: dict[str, Any],
    *,
    peek: Peek,
    max_message_size: int,
    concurrency: int = 8,
    progress: Callable[[ReconcileReport], None] | None = None,
    read_queue: bool = False,
    receive_reserve: int = 1,
) -> ReconcileReport:
    """Account for every record of ``source``; see the module's docstring."""
    if migration.verify is None and migration.verify_batch is None:
        from northmigrate.errors import PluginError

        raise PluginError(
            f"migration {migration.name} has no verify: reconcile cannot tell migrated records",
            hint="add verify=(record, ctx) -> bool to the Migration",
        )
    started = time.monotonic()
    report = ReconcileReport(source=source.name, read_queue=read_queue)
    sqs = queues.sqs
    main_url, dlq_url = queues.main_url(), queues.dlq_url()
    main_before, dlq_before = queues.depth(main_url), queues.depth(dlq_url)
    in_dlq = peek(sqs, dlq_url)
    main = QueueRead()
    if read_queue:
        limit = max_receive_count(queues, main_url)
        main = read_main_queue(sqs, main_url, limit, max(1, receive_reserve))
        report.stopped_at = main.stopped_at
    in_main = main.found
    report.main_depth = main_before.total
    report.in_flight_unseen = main_before.in_flight + dlq_before.in_flight
    # Without reading the main queue (or all of it), a record found nowhere may be in it.
    undecided = (
        (not read_queue or main.stopped_at is not None) and main_before.total > 0
    ) or dlq_before.in_flight > 0
    ctx = MigrationContext(options=options, aws=clients)
    validator = Validator(
        migration,
        max_message_size=max_message_size,
        source_name=source.name,
        ids=record_ids(migration),
    )
    pending: deque[tuple[list[tuple[str, BaseModel]], Future[list[Verdict]]]] = deque()

    def settle() -> None:
        chunk, future = pending.popleft()
        for (record_id, record), verdict in zip(chunk, future.result(), strict=True):
            if isinstance(verdict, str):
                report.verify_errors[verdict] += 1
            if verdict is True:
                report.migrated += 1
            elif record_id in in_dlq:
                report.dead_lettered += 1
                # Scrubbed again with the record's own values (the rules may have grown
                # since the reason was written).
                scrubber = Scrubber.for_record(record, migration.sensitive)
                report.dead_letter_reasons[scrubber.scrub(in_dlq[record_id] or "unknown")] += 1
            elif record_id in in_main:
                report.in_queue += 1
            elif undecided or isinstance(verdict, str) or record_id in main.near_limit:
                report.add_unsettled(record_id)
            else:
                report.add_missing(record_id)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nm-verify") as pool:
        try:
            for chunk in _chunks(source, validator, report, migration.verify_batch_size):
                records = [record for _, record in chunk]
                pending.append((chunk, pool.submit(verify_records, migration, ctx, records)))
                while len(pending) > concurrency * 2:  # bounded: memory stays flat
                    settle()
                if progress is not None:
                    progress(report)
            while pending:
                settle()
        finally:
            source.close()
    report.duration_s = time.monotonic() - started
    return report
