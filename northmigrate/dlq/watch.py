"""``dlq watch``: the DLQ's depth over time, its oldest age and the inflow since the start.

Depth comes from the queue's attributes (it reads no message). The alert is on the DLQ's
total depth (visible + in flight + delayed: a dead letter that someone is inspecting is still
a dead letter). The oldest age is CloudWatch's ``ApproximateAgeOfOldestMessage`` of the last
five minutes when the endpoint has it (real AWS; asked at most once a minute), else unknown.
The inflow is the sum of the rises in depth between samples: an estimate, blind to a
message that arrives and leaves between two samples.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS
from northmigrate.aws.sqs.queue import Depth, depth, queue_name
from northmigrate.consume.tap import TapState, read_state

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.dlq")

AGE_EVERY_S = 60.0


@dataclass(frozen=True)
class Sample:
    queue: str
    depth: Depth
    threshold: int
    inflow: int
    oldest_age_s: float | None
    at: float  # epoch seconds
    tap: TapState | None = None  # the main queue's tap (who closed it and why), when known

    @property
    def alert(self) -> bool:
        return self.depth.total >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "visible": self.depth.visible,
            "in_flight": self.depth.in_flight,
            "delayed": self.depth.delayed,
            "depth": self.depth.total,
            "threshold": self.threshold,
            "alert": self.alert,
            "inflow": self.inflow,
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 1),
            "tap": None if self.tap is None else self.tap.to_dict(),
        }


class OldestAge:
    """CloudWatch's ``ApproximateAgeOfOldestMessage`` for a queue, best effort."""

    def __init__(
        self, cloudwatch: CloudWatchClient | None, queue: str, clock: Callable[[], float]
    ) -> None:
        self.cloudwatch = cloudwatch
        self.queue = queue
        self._clock = clock
        self._asked_at: float | None = None
        self._value: float | None = None

    def get(self) -> float | None:
        if self.cloudwatch is None:
            return None
        now = self._clock()
        if self._asked_at is not None and now - self._asked_at < AGE_EVERY_S:
            return self._value
        self._asked_at = now
        end = datetime.fromtimestamp(now, UTC)
        try:
            points = self.cloudwatch.get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": self.queue}],
                StartTime=end - timedelta(minutes=5),
                EndTime=end,
                Period=60,
                Statistics=["Maximum"],
            ).get("Datapoints", [])
        except AWS_EXCEPTIONS as exc:
            log.debug("no oldest age from CloudWatch: %s", exc)
            self.cloudwatch = None  # not there or not allowed: stop asking
            return None
        if not points:
            self._value = None
        else:
            latest = max(points, key=lambda p: p["Timestamp"])
            self._value = float(latest["Maximum"])
        return self._value


class Watcher:
    """Samples the DLQ; ``samples()`` yields one sample per ``interval`` until ``stop``."""

    def __init__(
        self,
        sqs: SQSClient,
        url: str,
        *,
        threshold: int = 1,
        interval: float = 5.0,
        cloudwatch: CloudWatchClient | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        main_url: str | None = None,
    ) -> None:
        self.sqs = sqs
        self.url = url
        self.main_url = main_url  # read its tap: a guard that closed it says why
        self.threshold = threshold
        self.interval = interval
        self.stop = stop or threading.Event()
        self._clock = clock
        self._age = OldestAge(cloudwatch, queue_name(url), clock)
        self._previous: int | None = None
        self.inflow = 0

    def sample(self) -> Sample:
        current = depth(self.sqs, self.url)
        if self._previous is not None and current.total > self._previous:
            self.inflow += current.total - self._previous
        self._previous = current.total
        return Sample(
            queue=queue_name(self.url),
            depth=current,
            threshold=self.threshold,
            inflow=self.inflow,
            oldest_age_s=self._age.get(),
            at=self._clock(),
            tap=self._tap(),
        )

    def _tap(self) -> TapState | None:
        if self.main_url is None:
            return None
        try:
            return read_state(self.sqs, self.main_url)
        except AWS_EXCEPTIONS as exc:  # the DLQ's depth is what is watched; the tap is extra
            log.debug("no tap state: %s", exc)
            return None

    def samples(self) -> Iterator[Sample]:
        while not self.stop.is_set():
            yield self.sample()
            if self.stop.wait(self.interval):
                return
