"""Metrics of record outcomes: CloudWatch embedded metric format (EMF), or PutMetricData.

Namespace ``northmigrate``, dimension ``Migration`` (and ``FailureKind`` for dead letters):

- ``Migrated``, ``Retried``, ``Released`` (Count);
- ``DeadLettered`` (Count), once per failure kind, with dimensions ``Migration`` and
  ``FailureKind`` (``permanent``, ``exhausted``, ``invalid``, ``unreadable``);
- ``Failed`` (Count): every failed try (retried or dead-lettered), once per error kind, with
  dimensions ``Migration`` and ``ErrorKind`` (``record``, ``throttled``, ``outage``: three
  values at most, northmigrate.failures);
- ``HandlerDuration`` (Milliseconds): the duration of each record, as a list of values.

The Lambda handler writes one EMF document per invocation on stdout (CloudWatch Logs turns
it into metrics, no API call); the local worker does the same with ``--metrics emf``, or
sends them with batched ``PutMetricData`` with ``--metrics cloudwatch``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from northmigrate.aws.clients import aws_errors
from northmigrate.failures import KINDS, RECORD

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

NAMESPACE = "northmigrate"
MAX_VALUES = 100  # EMF: at most 100 values of one metric in one document
PUT_BATCH = 1000  # PutMetricData: at most 1000 metric data items in one call
PUT_VALUES = 150  # PutMetricData: at most 150 values in one datum
METRIC_OF = {"migrated": "Migrated", "retried": "Retried", "released": "Released"}
COUNTED = ("Migrated", "Retried", "Released")


class Tally:
    """Outcomes counted since the last flush, from the events of :mod:`northmigrate.consume.events`
    (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()  # by error kind
        self.durations_ms: list[float] = []

    def count(self, event: Mapping[str, Any]) -> None:
        """Count one ``record`` event (other events are not outcomes)."""
        if event.get("event") != "record":
            return
        outcome = event.get("outcome")
        with self._lock:
            if outcome == "dead_lettered":
                self.dead_letters[str(event.get("failure_kind") or "unknown")] += 1
            elif outcome in METRIC_OF:
                self.counts[METRIC_OF[outcome]] += 1
            if outcome in ("dead_lettered", "retried"):
                kind = str(event.get("error_kind") or RECORD)
                self.failures[kind if kind in KINDS else RECORD] += 1
            if outcome != "released":
                self.durations_ms.append(float(event.get("duration_ms") or 0.0))

    def take(self) -> tuple[Counter[str], Counter[str], list[float], Counter[str]]:
        """What was counted (counts, dead letters by failure kind, durations, failed tries by
        error kind), leaving the tally empty."""
        with self._lock:
            out = (self.counts, self.dead_letters, self.durations_ms, self.failures)
            self.counts, self.dead_letters, self.durations_ms = Counter(), Counter(), []
            self.failures = Counter()
        return out


def emf_documents(
    migration: str,
    counts: Counter[str],
    dead_letters: Counter[str],
    durations_ms: list[float],
    failures: Counter[str] | None = None,
    *,
    timestamp_ms: int | None = None,
) -> list[dict[str, Any]]:
    """EMF documents for one flush (none when there is nothing to say). A document holds at
    most 100 values of a metric: the durations beyond go in further documents."""
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    documents: list[dict[str, Any]] = []
    chunks = [durations_ms[i : i + MAX_VALUES] for i in range(0, len(durations_ms), MAX_VALUES)]
    for n, chunk in enumerate(chunks or [[]]):
        values: dict[str, Any] = {"Migration": migration}
        metrics: list[dict[str, str]] = []
        for name in COUNTED if n == 0 else ():
            if counts.get(name):
                values[name] = counts[name]
                metrics.append({"Name": name, "Unit": "Count"})
        if chunk:
            values["HandlerDuration"] = chunk
            metrics.append({"Name": "HandlerDuration", "Unit": "Milliseconds"})
        if metrics:
            documents.append(_document(values, metrics, [["Migration"]], stamp))
    for kind, n in sorted(dead_letters.items()):
        body = {"Migration": migration, "FailureKind": kind, "DeadLettered": n}
        metric = [{"Name": "DeadLettered", "Unit": "Count"}]
        documents.append(_document(body, metric, [["Migration", "FailureKind"]], stamp))
    for kind, n in sorted((failures or Counter()).items()):
        body = {"Migration": migration, "ErrorKind": kind, "Failed": n}
        metric = [{"Name": "Failed", "Unit": "Count"}]
        documents.append(_document(body, metric, [["Migration", "ErrorKind"]], stamp))
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
        counts, dead_letters, durations_ms, failures = tally.take()
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
        data += [
            {
                "MetricName": "Failed",
                "Dimensions": [*dimension, {"Name": "ErrorKind", "Value": kind}],
                "Value": n,
                "Unit": "Count",
            }
            for kind, n in failures.items()
        ]
        data += [
            {
                "MetricName": "HandlerDuration",
                "Dimensions": dimension,
                "Values": durations_ms[start : start + PUT_VALUES],
                "Unit": "Milliseconds",
            }
            for start in range(0, len(durations_ms), PUT_VALUES)
        ]
        for start in range(0, len(data), PUT_BATCH):
            with aws_errors("CloudWatch PutMetricData"):
                self.cloudwatch.put_metric_data(
                    Namespace=NAMESPACE, MetricData=data[start : start + PUT_BATCH]
                )


Flush = Callable[[Tally], None]
log = logging.getLogger("northmigrate.metrics")
FLUSH_EVERY_S = 60.0  # CloudWatch's standard resolution: one flush a minute


class MetricsSink:
    """An event consumer (``worker --metrics``): counts each record event and flushes the
    tally once a minute and at ``close``. Metrics are told, not kept: a flush that fails is
    logged and its counts dropped; the records themselves are not affected."""

    def __init__(
        self,
        flush: Flush,
        *,
        every_s: float = FLUSH_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flush = flush
        self._every_s = every_s
        self._clock = clock
        self._tally = Tally()
        self._lock = threading.Lock()
        self._last = clock()

    def __call__(self, event: dict[str, Any]) -> None:
        self._tally.count(event)
        with self._lock:
            due = self._clock() - self._last >= self._every_s
            if due:
                self._last = self._clock()
        if due:
            self.flush()

    def flush(self) -> None:
        try:
            self._flush(self._tally)
        except Exception as exc:  # a metric must never stop a migration
            log.warning("could not send the worker's metrics: %s", exc)

    def close(self) -> None:
        self.flush()
