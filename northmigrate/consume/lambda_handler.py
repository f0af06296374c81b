"""The Lambda entry point behind an SQS event source mapping (deployed as
``northmigrate.aws_lambda.handler``, which re-exports :func:`handler`).

Each record of the event goes through the same per-record path as the local worker
(``northmigrate.consume.processing.Processor``: validation, the plugin's handler,
dead-lettering with a reason on ``PermanentError``, on an unreadable message and on the last
attempt). The handler returns ``{"batchItemFailures": [{"itemIdentifier": messageId},
...]}`` naming the records to retry (the mapping needs ``FunctionResponseTypes:
["ReportBatchItemFailures"]``, which ``deploy`` sets); the mapping deletes every other
record of the batch. When every record of the batch failed, the handler raises
:class:`BatchFailed` instead: AWS documents that a function error makes the mapping back off
(fewer concurrent pollers) while, with ``ReportBatchItemFailures``, a partial failure does
not scale polling down; nothing of that batch was to be deleted, so the error loses nothing.
A dead-lettered record is not a failure: it is already safe in the DLQ. Neither is a record
to retry on a standard queue whose delayed copy SQS confirmed (``REQUEUED``: the backoff is
the copy's delay, and its attempt count is in the copy). A retry in place (a FIFO queue, or
a copy SQS did not take) is reported to the mapping and hidden for its backoff first
(``ChangeMessageVisibility``), so an outage of a few minutes does not use up its tries.

Standard queue: a batch's records run concurrently (``worker.concurrency`` threads).
FIFO queue: records run in order; a failure holds back the later records of its own message
group (reported as failures, not started), and the other groups go on: the local worker's
rule. A record not started because the invocation is about to time out, or because the
guard tripped, is reported as failed too and made visible again at once.

What the function tells: one JSON line on stdout per record outcome and one summary per
invocation (``{"event": "invocation", "request_id": …}``, :mod:`northmigrate.consume.events`),
and the invocation's metrics in CloudWatch's embedded metric format
(:mod:`northmigrate.consume.metrics`): no API call. The guard
(:mod:`northmigrate.consume.guard`) counts every outcome; when it trips, the function tags
the queue's tap closed, with the reason, and disables its own mapping.

Configuration comes from the function's environment (``NORTHMIGRATE_<SECTION>__<KEY>``,
which ``deploy`` writes), read by ``config.load_settings`` as anywhere else.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from northmigrate.aws.clients import AwsClients, aws_errors
from northmigrate.aws.queues import Queues
from northmigrate.aws.sqs.batch import change_visibility_batch
from northmigrate.aws.sqs.message import InMessage, normalise
from northmigrate.aws.sqs.queue import queue_arn
from northmigrate.config import Settings, load_settings
from northmigrate.consume.backoff import RetryDelays, delays_for
from northmigrate.consume.events import JsonLines, record_event, released_event
from northmigrate.consume.guard import Guard, Trip
from northmigrate.consume.metrics import EmfWriter, Tally
from northmigrate.consume.probe import is_probe_event, scheduled_probe
from northmigrate.consume.processing import Outcome, Processor, Status
from northmigrate.consume.tap import GUARD, MAX_MAPPING_CONCURRENCY, Tap, closed_tags, read_state
from northmigrate.consume.throttle import Throttle
from northmigrate.plugin import Migration, load_migration
from northmigrate.records.envelope import iso, utc_now

log = logging.getLogger("northmigrate.aws_lambda")
SAFETY_MS = 1_000  # a record is not started with less than this left (or a quarter of the time)


@dataclass
class Runtime:
    """What one container builds once and reuses for every invocation."""

    settings: Settings
    clients: AwsClients
    migration: Migration[Any]
    processor: Processor
    queues: Queues
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    guard: Guard | None = None
    function_name: str = "function"
    delays: RetryDelays = field(default_factory=RetryDelays)

    @property
    def fifo(self) -> bool:
        return self.settings.queue.fifo


def build_runtime(
    env: Mapping[str, str] | None = None,
    *,
    clients: AwsClients | None = None,
    out: IO[str] | None = None,
) -> Runtime:
    """Settings from the environment, the plugin, AWS clients and the record processor."""
    environ = os.environ if env is None else env
    settings = load_settings(None, environ)
    clients = clients or AwsClients(settings.aws, pool_size=settings.worker.concurrency + 4)
    migration = load_migration(settings.migration.plugin)
    sqs = clients.client("sqs")
    queues = Queues(sqs, settings.queue)
    delays = delays_for(settings.worker)
    processor = Processor(
        migration,
        clients=clients,
        options=settings.migration.options,
        dlq_url=queues.dlq_url(),
        max_receive_count=settings.queue.max_receive_count,
        fifo=settings.queue.fifo,
        sqs=sqs,
        queue_url=queues.main_url(),
        retry_delay=delays,
    )
    runtime = Runtime(settings, clients, migration, processor, queues, out or sys.stdout)
    runtime.delays = delays
    runtime.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    if settings.guard.enabled:
        by = f"{GUARD} (lambda {runtime.function_name})"
        # A function's limit is its mapping's: it lowers from what the mapping runs at (its
        # maximum concurrency, or its maximum pollers in provisioned mode).
        most = settings.deploy.max_concurrency or MAX_MAPPING_CONCURRENCY
        tap = own_tap(runtime)
        throttle = Throttle(settings.guard, tap, by=by, start=lambda rate: tap.cap() or most)
        runtime.guard = Guard(
            settings.guard, by=by, on_trip=lambda trip: close_tap(runtime, trip), throttle=throttle
        )
    return runtime


def own_tap(runtime: Runtime) -> Tap:
    """The tap as this function switches it: the queue's tags and its own mapping (by the
    UUID deploy put in its environment; found by listing when it is not there)."""
    settings = runtime.settings
    uuid = settings.guard.mapping_uuid
    return Tap(
        runtime.clients,
        runtime.queues,
        default_limit=settings.deploy.max_concurrency,
        default_pollers=settings.deploy.pollers[1] if settings.deploy.pollers else None,
        only=(uuid,) if uuid else None,
        function=runtime.function_name,
    )


def close_tap(runtime: Runtime, trip: Trip) -> None:
    """The guard tripped: tag the queue's tap closed (every local worker stops) and disable
    this function's own mapping (Lambda stops). Failing that, it says so and goes on: the
    records not started in this invocation are handed back all the same."""
    log.error("the guard closes the tap: %s", trip.reason)
    queue = runtime.queues
    try:
        with aws_errors(f"tag queue {queue.main_name}"):
            queue.sqs.tag_queue(
                QueueUrl=queue.main_url(), Tags=closed_tags(trip.by, trip.reason, trip.at)
            )
        lam = runtime.clients.client("lambda")
        uuids = [runtime.settings.guard.mapping_uuid or ""]
        if not uuids[0]:  # deployed from a template: find this function's own mapping
            with aws_errors("list this function's event source mappings"):
                found = lam.list_event_source_mappings(
                    EventSourceArn=queue_arn(queue.sqs, queue.main_url()),
                    FunctionName=runtime.function_name,
                )
            uuids = [m["UUID"] for m in found.get("EventSourceMappings", []) if "UUID" in m]
        for uuid in uuids:
            with aws_errors(f"disable event source mapping {uuid}"):
                lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    except Exception as exc:  # the handler must answer for its batch whatever happens here
        log.error("the guard could not close the tap: %s", exc)


def _rearm(runtime: Runtime) -> None:
    """A warm container whose guard tripped starts records again once the tap is open (an
    operator's ``tap open``): its guard starts a new window. While the tap stays closed the
    batch is handed back unstarted."""
    guard = runtime.guard
    if guard is None or guard.trip is None:
        return
    try:
        with aws_errors(f"read the tap of {runtime.queues.main_name}"):
            state = read_state(runtime.queues.sqs, runtime.queues.main_url())
    except Exception as exc:  # unknown: stay tripped, hand the batch back
        log.warning("the guard could not read the tap: %s", exc)
        return
    if state.open:
        log.info("the tap is open again: the guard starts a new window")
        guard.reset()


def _process(runtime: Runtime, record: Mapping[str, Any]) -> Outcome | None:
    """One record's outcome; None when processing itself broke (the record is retried)."""
    try:
        return runtime.processor.process(record)
    except Exception as exc:  # a bug must not fail the other records of the batch
        # Its text may quote a record: the class alone, the traceback only at DEBUG.
        log.error(
            "processing message %s failed unexpectedly (%s); it is retried",
            record.get("messageId"),
            type(exc).__name__,
        )
        log.debug("processing message %s failed", record.get("messageId"), exc_info=True)
        return None


class BatchFailed(Exception):
    """Raised when every record of a batch failed: a function error, so the event source
    mapping scales its pollers down (with ``ReportBatchItemFailures``, a partial failure does
    not); no record is deleted either way, and each keeps the visibility set for it."""


NOT_STARTED = "not started"  # a record held back: the guard, the time left, its FIFO group


class _Batch:
    """One invocation's records and what became of each."""

    def __init__(self, runtime: Runtime, records: Sequence[Mapping[str, Any]]) -> None:
        self.runtime = runtime
        self.records = records
        self.outcomes: list[Outcome | str | None] = [NOT_STARTED] * len(records)

    def run(self, time_left: Callable[[], bool]) -> None:
        guard = self.runtime.guard

        def may_start() -> bool:
            return time_left() and (guard is None or guard.trip is None)

        if self.runtime.fifo:
            held: set[str] = set()  # groups with a failure in this batch
            for index, record in enumerate(self.records):
                group = normalise(record).group_id or ""
                if group in held or not may_start():
                    continue
                outcome = self._one(record)
                self.outcomes[index] = outcome
                if outcome is None or not outcome.delete:
                    held.add(group)
            return

        def one(index: int) -> None:
            if may_start():
                self.outcomes[index] = self._one(self.records[index])

        workers = max(1, min(self.runtime.settings.worker.concurrency, len(self.records)))
        with ThreadPoolExecutor(workers, thread_name_prefix="record") as pool:
            list(pool.map(one, range(len(self.records))))

    def _one(self, record: Mapping[str, Any]) -> Outcome | None:
        outcome = _process(self.runtime, record)
        if outcome is not None and self.runtime.guard is not None:
            self.runtime.guard.record(outcome)
        return outcome

    def all_failed(self) -> bool:
        """Every record stays in the queue and at least one failed in the plugin's handler
        (or in processing): a sign the new service is down, not a batch of bad records."""
        outcomes = self.outcomes
        stays = all(not isinstance(o, Outcome) or not o.delete for o in outcomes)
        tried = any(o is None or (isinstance(o, Outcome) and o.retried) for o in outcomes)
        return bool(outcomes) and stays and tried

    def failed_ids(self) -> list[str]:
        return [
            str(record.get("messageId", ""))
            for record, outcome in zip(self.records, self.outcomes, strict=True)
            if not isinstance(outcome, Outcome) or not outcome.delete
        ]

    def hide_and_hand_back(self) -> None:
        """Retries in place wait for their backoff; records not started are visible at once
        (a failed FIFO message, hidden, still holds its group back)."""
        ceiling = self.runtime.settings.queue.visibility_timeout
        changes: list[tuple[InMessage, int]] = []
        for record, outcome in zip(self.records, self.outcomes, strict=True):
            if outcome == NOT_STARTED:
                changes.append((normalise(record), 0))
            elif isinstance(outcome, Outcome) and outcome.status is Status.RETRY:
                backoff = self.runtime.delays(outcome.attempt, outcome.backoff_kind, ceiling)
                outcome.delay_s = backoff
                changes.append((outcome.message, backoff))
        url = self.runtime.queues.main_url()
        for start in range(0, len(changes), 10):
            result = change_visibility_batch(
                self.runtime.queues.sqs,
                url,
                changes[start : start + 10],
                lambda change: change[0].receipt_handle,
                lambda change: change[1],
            )
            for (message, _), why in result.not_accepted:
                log.warning("could not set the visibility of %s: %s", message.message_id, why)


def handle(
    event: Mapping[str, Any],
    runtime: Runtime,
    *,
    remaining_ms: Callable[[], int] | None = None,
    request_id: str = "",
) -> dict[str, list[dict[str, str]]]:
    """Process an SQS event; the ``batchItemFailures`` response for the records to retry."""
    started = time.monotonic()
    records: Sequence[Mapping[str, Any]] = event.get("Records") or []
    safety_ms = min(SAFETY_MS, remaining_ms() // 4) if remaining_ms is not None else 0

    def time_left() -> bool:
        return remaining_ms is None or remaining_ms() >= safety_ms

    _rearm(runtime)
    batch = _Batch(runtime, records)
    batch.run(time_left)
    batch.hide_and_hand_back()
    failed = batch.failed_ids()
    _tell(runtime, batch, request_id, time.monotonic() - started, len(failed))
    if batch.all_failed():
        raise BatchFailed(
            f"every record of the batch failed ({len(failed)}); "
            "they come back after their backoff, and the mapping polls less"
        )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _tell(runtime: Runtime, batch: _Batch, request_id: str, seconds: float, failed: int) -> None:
    """One event per record, the invocation's summary, and its metrics (EMF)."""
    emit = JsonLines(runtime.out)
    name = runtime.migration.name
    tally = Tally()
    counts: dict[str, int] = {"migrated": 0, "retried": 0, "dead_lettered": 0, "released": 0}
    for record, outcome in zip(batch.records, batch.outcomes, strict=True):
        if isinstance(outcome, Outcome):
            event = record_event(outcome, migration=name, consumer="lambda")
        else:
            event = released_event(normalise(record), migration=name, consumer="lambda")
        tally.count(event)
        counts[event["outcome"]] += 1
        emit(event | {"request_id": request_id})
    trip = runtime.guard.trip if runtime.guard is not None else None
    emit(
        {
            "event": "invocation",
            "migration": name,
            "request_id": request_id,
            "received": len(batch.records),
            **counts,
            "batch_item_failures": failed,
            "duration_ms": round(seconds * 1000, 3),
            "guard": trip.reason if trip is not None else None,
            "at": iso(utc_now()),
        }
    )
    EmfWriter(name, runtime.out)(tally)


# Lambda runs many invocations in one process: the settings, the plugin import and the AWS
# clients (with their connection pools) are built on the first invocation and reused, the
# documented way to keep warm invocations fast. This lazy cache is the one module-level
# state in northmigrate, and only this entry point uses it; ``handle`` takes its runtime
# explicitly (tests build their own).
_runtime: Runtime | None = None


def probe(runtime: Runtime) -> dict[str, Any]:
    """The stack's schedule asks whether the target is back (:func:`probe.scheduled_probe`);
    the tried record's event and the answer go to stdout like any other."""
    emit = JsonLines(runtime.out)
    tap = own_tap(runtime)
    by = f"{GUARD} (lambda {runtime.function_name})"

    def told(outcome: Outcome) -> None:
        emit(record_event(outcome, migration=runtime.migration.name, consumer="lambda"))

    answer = scheduled_probe(runtime.processor, tap, runtime.settings.guard, by=by, told=told)
    if answer["opened"] and runtime.guard is not None:
        runtime.guard.reset()
    emit(answer | {"at": iso(utc_now())})
    return answer


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The function's handler (``northmigrate.aws_lambda.handler``): an SQS event from the
    mapping, or the schedule's probe event."""
    global _runtime
    if _runtime is None:
        logging.getLogger("northmigrate").setLevel(logging.INFO)
        _runtime = build_runtime()
    if is_probe_event(event):
        return probe(_runtime)  # the stack's schedule
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return handle(
        event,
        _runtime,
        remaining_ms=remaining if callable(remaining) else None,
        request_id=str(getattr(context, "aws_request_id", "") or ""),
    )
