"""Metrics of record outcomes: CloudWatch embedded metric format (EMF), or PutMetricData.

Namespace ``northmigrate``, dimension ``Migration`` (and ``FailureKind`` for dead letters):

- ``Migrated``, ``Retried``, ``Released`` (Count);
- ``DeadLettered`` (Count), once per failure kind, with dimensions ``Migration`` and
  ``FailureKind`` (``permanent``, ``exhausted``, ``invalid``, ``unreadable``);
- ``HandlerDuration`` (Milliseconds): the duration of each record, as a list of values.

The Lambda handler writes one EMF document per invocation on stdout (CloudWatch Logs turns
it into metrics, no API call); the local worker does the same with ``--metrics emf``, or
sends them with batched ``PutMetricData`` with ``--metrics cloudwatch``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from northmigrate.aws import aws_errors
from northmigrate.processing import Outcome, Status

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

NAMESPACE = "northmigrate"
MAX_VALUES = 100  # EMF: at most 100 values of one metric in one document
PUT_BATCH = 1000  # PutMetricData: at most 1000 metric data items in one call


class Tally:
    """Outcomes counted since the last flush (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.durations_ms: list[float] = []

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.status is Status.SUCCEEDED:
                self.counts["Migrated"] += 1
            elif outcome.status is Status.DEAD_LETTERED:
                self.dead_letters[outcome.kind or "unknown"] += 1
            else:
                self.counts["Retried"] += 1
            self.durations_ms.append(round(outcome.duration_s * 1000, 3))

    def released(self, n: int) -> None:
        with self._lock:
            self.counts["Released"] += n

    def take(self) -> tuple[Counter[str], Counter[str], list[float]]:
        """What was counted, leaving the tally empty."""
        with self._lock:
            out = (self.counts, self.dead_letters, self.durations_ms)
            self.counts, self.dead_letters, self.durations_ms = Counter(), Counter(), []
        return out


def emf_documents(
    migration: str,
    counts: Counter[str],
    dead_letters: Counter[str],
    durations_ms: list[float],
    *,
    timestamp_ms: int | None = None,
) -> list[dict[str, Any]]:
    """EMF documents for one flush (none when there is nothing to say)."""
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    documents: list[dict[str, Any]] = []
    main: dict[str, Any] = {"Migration": migration}
    metrics: list[dict[str, str]] = []
    for name in ("Migrated", "Retried", "Released"):
        if counts.get(name):
            main[name] = counts[name]
            metrics.append({"Name": name, "Unit": "Count"})
    if durations_ms:
        main["HandlerDuration"] = durations_ms[:MAX_VALUES]
        metrics.append({"Name": "HandlerDuration", "Unit": "Milliseconds"})
    if metrics:
        documents.append(_document(main, metrics, [["Migration"]], stamp))
    for kind, n in sorted(dead_letters.items()):
        body = {"Migration": migration, "FailureKind": kind, "DeadLettered": n}
        metric = [{"Name": "DeadLettered", "Unit": "Count"}]
        documents.append(_document(body, metric, [["Migration", "FailureKind"]], stamp))
    return documents


def _document(
    values: dict[str, Any], metrics: list[dict[str, str]], dimensions: list[list[str]], stamp: int
) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": stamp,
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": dimensions, "Metrics": metrics}
            ],
        },
        **values,
    }


class EmfWriter:
    """Writes the tally as EMF lines to a stream (stdout on Lambda)."""

    def __init__(self, migration: str, stream: IO[str]) -> None:
        self.migration = migration
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, tally: Tally) -> None:
        documents = emf_documents(self.migration, *tally.take())
        with self._lock:
            for document in documents:
                self.stream.write(json.dumps(document, separators=(",", ":")) + "\n")
            self.stream.flush()


class CloudWatchPublisher:
    """Sends the tally with ``PutMetricData``, batched (the local worker's ``--metrics
    cloudwatch``)."""

    def __init__(self, migration: str, cloudwatch: CloudWatchClient) -> None:
        self.migration = migration
        self.cloudwatch = cloudwatch

    def __call__(self, tally: Tally) -> None:
        counts, dead_letters, durations_ms = tally.take()
        dimension = [{"Name": "Migration", "Value": self.migration}]
        data: list[Any] = [
            {"MetricName": name, "Dimensions": dimension, "Value": n, "Unit": "Count"}
            for name, n in counts.items()
            if n
        ]
        data += [
            {
                "MetricName": "DeadLettered",
                "Dimensions": [*dimension, {"Name": "FailureKind", "Value": kind}],
                "Value": n,
                "Unit": "Count",
            }
            for kind, n in dead_letters.items()
        ]
        if durations_ms:
            data.append(
                {
                    "MetricName": "HandlerDuration",
                    "Dimensions": dimension,
                    "Values": durations_ms[:150],  # PutMetricData takes 150 values a datum
                    "Unit": "Milliseconds",
                }
            )
        for start in range(0, len(data), PUT_BATCH):
            with aws_errors("CloudWatch PutMetricData"):
                self.cloudwatch.put_metric_data(
                    Namespace=NAMESPACE, MetricData=data[start : start + PUT_BATCH]
                )


Flush = Callable[[Tally], None]
