"""The canary of a switch: the new function reads the queue slowly for a while, and is
watched.

It fails when, during the wait, the queue's dead-letter queue grows, the new function's
``Errors`` (CloudWatch ``AWS/Lambda``) rise above zero, or its mapping stops being Enabled
(a guard disabled it). CloudWatch is best effort: an endpoint without it watches the DLQ and
the mapping only, and the report says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from northmigrate.aws import AWS_EXCEPTIONS, aws_errors
from northmigrate.aws.sqs.queue import depth

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

CANARY_CONCURRENCY = 2  # AWS's floor for a mapping's maximum concurrency
CHECK_EVERY_S = 5.0


@dataclass
class CanaryResult:
    ok: bool
    waited_s: float
    reason: str | None = None
    errors_watched: bool = True  # False: CloudWatch could not be read

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "waited_s": round(self.waited_s, 1),
            "reason": self.reason,
            "errors_watched": self.errors_watched,
        }


def function_errors(
    cloudwatch: CloudWatchClient, function: str, since: datetime, until: datetime
) -> float:
    """The sum of the function's ``Errors`` between ``since`` and ``until``."""
    response = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "errors",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                        "Dimensions": [{"Name": "FunctionName", "Value": function}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=since - timedelta(minutes=1),
        EndTime=until + timedelta(minutes=1),
    )
    return float(sum(sum(r.get("Values", [])) for r in response.get("MetricDataResults", [])))


@dataclass
class Canary:
    """Watches one function's first minutes on the queue."""

    sqs: SQSClient
    lam: LambdaClient
    cloudwatch: CloudWatchClient | None
    function: str
    mapping_uuid: str
    dlq_url: str | None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _since: datetime | None = None
    _dlq_before: int = 0

    def _dlq_total(self) -> int:
        return depth(self.sqs, self.dlq_url).total if self.dlq_url else 0

    def _errors(self, since: datetime) -> float | None:
        if self.cloudwatch is None:
            return None
        try:
            return function_errors(self.cloudwatch, self.function, since, self.now())
        except AWS_EXCEPTIONS:
            self.cloudwatch = None  # not there or not allowed: watch the rest
            return None

    def _problem(self, since: datetime, dlq_before: int) -> str | None:
        dlq = self._dlq_total()
        if dlq > dlq_before:
            name = (self.dlq_url or "").rsplit("/", 1)[-1]
            return f"{dlq - dlq_before} new message(s) in the dead-letter queue {name}"
        errors = self._errors(since)
        if errors:
            return f"{errors:.0f} error(s) of function {self.function}"
        with aws_errors(f"event source mapping {self.mapping_uuid}"):
            state = self.lam.get_event_source_mapping(UUID=self.mapping_uuid).get("State")
        if state not in {"Enabled", "Enabling", "Updating"}:
            return f"the mapping of {self.function} is {state} (something disabled it)"
        return None

    def start(self) -> None:
        """Note the DLQ's depth and the time: called before the new mapping is enabled, so
        that a dead letter its first batch makes counts."""
        self._since = self.now()
        self._dlq_before = self._dlq_total()

    def watch(self, wait_s: float) -> CanaryResult:
        """Watch for ``wait_s`` seconds (from ``start``); the first problem ends the canary."""
        if self._since is None:
            self.start()
        since, dlq_before, start = self._since or self.now(), self._dlq_before, self.clock()
        while True:
            waited = self.clock() - start
            problem = self._problem(since, dlq_before)
            if problem is not None:
                return CanaryResult(False, waited, problem, self.cloudwatch is not None)
            if waited >= wait_s:
                return CanaryResult(True, waited, None, self.cloudwatch is not None)
            self.sleep(min(CHECK_EVERY_S, max(0.1, wait_s - waited)))
