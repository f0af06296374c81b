"""The Lambda side of ``status``: the functions reading the main queue and their last minutes.

For each event source mapping on the main queue: the function's ``Invocations``, ``Errors``
and ``Throttles`` (sums) and ``ConcurrentExecutions`` (the peak) from ``AWS/Lambda``, and
the migration's own ``Migrated`` and ``DeadLettered`` (every failure kind) from the
``northmigrate`` namespace the handler writes in embedded metric format, as counts over the
window and rates per minute. One ``GetMetricData`` call a function (plus one
``ListMetrics`` for the failure kinds). Best effort: an endpoint without Lambda or
CloudWatch gives no Lambda side, never a failed ``status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS
from northmigrate.consume.metrics import NAMESPACE
from northmigrate.consume.tap import MappingState, mappings
from northmigrate.errors import AwsError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient

log = logging.getLogger("northmigrate.status")
WINDOW_MIN = 15
PERIOD_S = 60
LAMBDA_SUMS = ("Invocations", "Errors", "Throttles")


@dataclass(frozen=True)
class FunctionSide:
    function: str
    mapping: MappingState
    minutes: int
    invocations: float | None = None  # None: the metrics could not be read
    errors: float | None = None
    throttles: float | None = None
    peak_concurrency: float | None = None
    migrated: float | None = None
    dead_lettered: float | None = None

    def per_minute(self, count: float | None) -> float | None:
        return None if count is None else round(count / self.minutes, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "mapping": self.mapping.to_dict(),
            "minutes": self.minutes,
            "invocations": self.invocations,
            "errors": self.errors,
            "throttles": self.throttles,
            "peak_concurrency": self.peak_concurrency,
            "migrated": self.migrated,
            "dead_lettered": self.dead_lettered,
            "migrated_per_min": self.per_minute(self.migrated),
            "dead_lettered_per_min": self.per_minute(self.dead_lettered),
        }


def _query(n: int, namespace: str, name: str, dims: dict[str, str], stat: str) -> Any:
    return {
        "Id": f"m{n}",
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            },
            "Period": PERIOD_S,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _failure_kinds(cloudwatch: CloudWatchClient, migration: str) -> list[str]:
    """The failure kinds the migration's DeadLettered metric was ever written with."""
    pages = cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=NAMESPACE,
        MetricName="DeadLettered",
        Dimensions=[{"Name": "Migration", "Value": migration}],
    )
    kinds = set()
    for page in pages:
        for metric in page.get("Metrics", []):
            for dim in metric.get("Dimensions", []):
                if dim.get("Name") == "FailureKind":
                    kinds.add(str(dim.get("Value")))
    return sorted(kinds)


def function_side(
    cloudwatch: CloudWatchClient,
    mapping: MappingState,
    migration: str | None,
    *,
    minutes: int = WINDOW_MIN,
    now: datetime | None = None,
) -> FunctionSide:
    end = now or datetime.now(UTC)
    fn = {"FunctionName": mapping.function}
    own = {"Migration": migration or ""}
    queries = [_query(n, "AWS/Lambda", name, fn, "Sum") for n, name in enumerate(LAMBDA_SUMS)]
    queries.append(_query(3, "AWS/Lambda", "ConcurrentExecutions", fn, "Maximum"))
    kinds: list[str] = []
    if migration is not None:  # the handler's own metrics, by the migration's name
        queries.append(_query(4, NAMESPACE, "Migrated", own, "Sum"))
        kinds = _failure_kinds(cloudwatch, migration)
    queries += [
        _query(5 + n, NAMESPACE, "DeadLettered", own | {"FailureKind": kind}, "Sum")
        for n, kind in enumerate(kinds)
    ]
    values: dict[str, list[float]] = {q["Id"]: [] for q in queries}
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=end - timedelta(minutes=minutes), EndTime=end
    )
    for page in pages:
        for result in page.get("MetricDataResults", []):
            values[result["Id"]] += [float(v) for v in result.get("Values", [])]
    peak = values["m3"]
    return FunctionSide(
        function=mapping.function,
        mapping=mapping,
        minutes=minutes,
        invocations=sum(values["m0"]),
        errors=sum(values["m1"]),
        throttles=sum(values["m2"]),
        peak_concurrency=max(peak) if peak else None,
        migrated=None if migration is None else sum(values["m4"]),
        dead_lettered=(
            None if migration is None else sum(sum(values[f"m{5 + n}"]) for n in range(len(kinds)))
        ),
    )


def lambda_side(
    lam: LambdaClient,
    cloudwatch: CloudWatchClient,
    queue_arn: str,
    migration_name: Callable[[], str],
    *,
    minutes: int = WINDOW_MIN,
) -> list[FunctionSide] | None:
    """Each function reading the queue, or None when that cannot be known here. The
    migration's name (its plugin's) is asked for only when there is a function."""
    try:
        found = [MappingState.from_api(m) for m in mappings(lam, queue_arn)]
    except (AwsError, *AWS_EXCEPTIONS) as exc:
        log.debug("no Lambda side: %s", exc)
        return None
    migration: str | None = None
    if found:
        try:
            migration = migration_name()
        except Exception as exc:  # the plugin does not load here: the AWS/Lambda side only
            log.debug("no migration name for the handler's metrics: %s", exc)
    sides = []
    for mapping in found:
        try:
            sides.append(function_side(cloudwatch, mapping, migration, minutes=minutes))
        except AWS_EXCEPTIONS as exc:
            log.debug("no metrics for %s: %s", mapping.function, exc)
            sides.append(FunctionSide(mapping.function, mapping, minutes))
    return sides
