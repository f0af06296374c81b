"""The Lambda entry point: ``northmigrate.aws_lambda.handler`` behind an SQS event source mapping.

Each record of the event goes through the same per-record path as the local worker
(``northmigrate.processing.Processor``: validation, the plugin's handler, dead-lettering with
a reason on ``PermanentError``, on an unreadable message and on the last attempt). The
handler returns ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`` naming the
records to retry (the mapping needs ``FunctionResponseTypes: ["ReportBatchItemFailures"]``,
which ``deploy`` sets); the mapping deletes every other record of the batch. A dead-lettered
record is not a failure: it is already safe in the DLQ. Neither is a record to retry on a
standard queue whose delayed copy SQS confirmed (``REQUEUED``: the backoff is the copy's
delay, and its attempt count is in the copy); only a retry in place is reported to the
mapping.

Standard queue: a batch's records run concurrently (``worker.concurrency`` threads).
FIFO queue: records run in order, and at the first failure the handler stops and reports
that record and every later one as failed, as AWS requires to keep each group's order.
A record not started because the invocation is about to time out is reported as failed
too (retried), instead of letting the timeout fail the whole batch.

Configuration comes from the function's environment (``NORTHMIGRATE_<SECTION>__<KEY>``,
which ``deploy`` writes), read by ``config.load_settings`` as anywhere else.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from northmigrate.aws import AwsClients
from northmigrate.backoff import retry_delay
from northmigrate.config import Settings, load_settings
from northmigrate.plugin import Migration, load_migration
from northmigrate.processing import SQS_MAX_DELAY_S, Outcome, Processor, Status
from northmigrate.queues import Queues

log = logging.getLogger("northmigrate.aws_lambda")
SAFETY_MS = 1_000  # a record is not started with less than this left (or a quarter of the time)


@dataclass
class Runtime:
    """What one container builds once and reuses for every invocation."""

    settings: Settings
    clients: AwsClients
    migration: Migration[Any]
    processor: Processor

    @property
    def fifo(self) -> bool:
        return self.settings.queue.fifo


def build_runtime(
    env: Mapping[str, str] | None = None, *, clients: AwsClients | None = None
) -> Runtime:
    """Settings from the environment, the plugin, AWS clients and the record processor."""
    settings = load_settings(None, os.environ if env is None else env)
    clients = clients or AwsClients(settings.aws, pool_size=settings.worker.concurrency + 4)
    migration = load_migration(settings.migration.plugin)
    sqs = clients.client("sqs")
    queues = Queues(sqs, settings.queue)
    worker = settings.worker

    def delay(attempt: int) -> int:
        return retry_delay(
            attempt,
            base_s=worker.backoff_base_s,
            max_s=worker.backoff_max_s,
            visibility_timeout_s=SQS_MAX_DELAY_S,
        )

    processor = Processor(
        migration,
        clients=clients,
        options=settings.migration.options,
        dlq_url=queues.dlq_url(),
        max_receive_count=settings.queue.max_receive_count,
        fifo=settings.queue.fifo,
        sqs=sqs,
        queue_url=queues.main_url(),
        retry_delay=delay,
    )
    return Runtime(settings, clients, migration, processor)


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


def handle(
    event: Mapping[str, Any],
    runtime: Runtime,
    *,
    remaining_ms: Callable[[], int] | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Process an SQS event; the ``batchItemFailures`` response for the records to retry."""
    records: Sequence[Mapping[str, Any]] = event.get("Records") or []
    safety_ms = min(SAFETY_MS, remaining_ms() // 4) if remaining_ms is not None else 0

    def time_left() -> bool:
        return remaining_ms is None or remaining_ms() >= safety_ms

    outcomes: list[Outcome | None] = []
    failed: list[str] = []
    if runtime.fifo:
        for index, record in enumerate(records):
            outcome = _process(runtime, record) if time_left() else None
            outcomes.append(outcome)
            if outcome is None or not outcome.delete:
                failed = [str(r.get("messageId", "")) for r in records[index:]]
                break
    else:

        def one(record: Mapping[str, Any]) -> Outcome | None:
            return _process(runtime, record) if time_left() else None

        workers = max(1, min(runtime.settings.worker.concurrency, len(records)))
        with ThreadPoolExecutor(workers, thread_name_prefix="record") as pool:
            outcomes = list(pool.map(one, records))
        failed = [
            str(record.get("messageId", ""))
            for record, outcome in zip(records, outcomes, strict=True)
            if outcome is None or not outcome.delete
        ]
    done = [o for o in outcomes if o is not None]
    log.info(
        json.dumps(
            {
                "received": len(records),
                "succeeded": sum(o.status == Status.SUCCEEDED for o in done),
                "dead_lettered": sum(o.status == Status.DEAD_LETTERED for o in done),
                "retried": len(failed) + sum(o.status == Status.REQUEUED for o in done),
            }
        )
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


# Lambda runs many invocations in one process: the settings, the plugin import and the AWS
# clients (with their connection pools) are built on the first invocation and reused, the
# documented way to keep warm invocations fast. This lazy cache is the one module-level
# state in northmigrate, and only this entry point uses it; ``handle`` takes its runtime
# explicitly (tests build their own).
_runtime: Runtime | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The function's handler (``northmigrate.aws_lambda.handler``)."""
    global _runtime
    if _runtime is None:
        logging.getLogger("northmigrate").setLevel(logging.INFO)
        _runtime = build_runtime()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return handle(event, _runtime, remaining_ms=remaining if callable(remaining) else None)
