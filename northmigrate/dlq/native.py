"""``dlq redrive --native``: SQS's own ``StartMessageMoveTask`` (real AWS; no filters, no
``--max``, no dry run), followed with ``ListMessageMoveTasks`` and cancelled when stopped.

moto answers StartMessageMoveTask with an error: this path is tested with botocore's Stubber
(tests/unit/test_dlq_redrive.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS, aws_errors, translate
from northmigrate.aws.sqs.queue import queue_arn, queue_name
from northmigrate.dlq.report import MODE_NATIVE, Progress, RedriveReport
from northmigrate.errors import AwsError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.dlq")

NATIVE_POLL_S = 2.0
NATIVE_MAX_RATE = 500
_NATIVE_DONE = {"COMPLETED", "CANCELLED", "FAILED"}


def native_redrive(
    sqs: SQSClient,
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


def _cancel(sqs: SQSClient, handle: str, report: RedriveReport) -> None:
    try:
        response = sqs.cancel_message_move_task(TaskHandle=handle)
    except AWS_EXCEPTIONS as exc:
        log.warning("could not cancel the message move task: %s", translate(exc, "cancel").message)
        return
    report.task_status = "CANCELLING"
    report.moved = int(response.get("ApproximateNumberOfMessagesMoved", report.moved))
