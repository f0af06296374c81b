"""The migration's two queues: names to URLs and ARNs, attributes, depths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from northmigrate.aws import aws_errors
from northmigrate.config import QueueSettings

DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass(frozen=True)
class Depth:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def to_dict(self) -> dict[str, int]:
        return {"visible": self.visible, "in_flight": self.in_flight, "delayed": self.delayed}


class Queues:
    """Looks up (and caches) the URLs of the main queue and its DLQ."""

    def __init__(self, sqs: Any, settings: QueueSettings) -> None:
        self.sqs = sqs
        self.settings = settings
        self._urls: dict[str, str] = {}

    @property
    def main_name(self) -> str:
        return self.settings.name

    @property
    def dlq_name(self) -> str:
        return self.settings.dead_letter_name

    def url(self, name: str) -> str:
        cached = self._urls.get(name)
        if cached is None:
            with aws_errors(f"queue {name}"):
                cached = str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
            self._urls[name] = cached
        return cached

    def main_url(self) -> str:
        return self.url(self.main_name)

    def dlq_url(self) -> str:
        return self.url(self.dlq_name)

    def attributes(self, url: str, names: list[str] | None = None) -> dict[str, str]:
        with aws_errors(f"queue {url.rsplit('/', 1)[-1]}"):
            response = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names or ["All"])
        return dict(response.get("Attributes", {}))

    def arn(self, url: str) -> str:
        return self.attributes(url, ["QueueArn"])["QueueArn"]

    def depth(self, url: str) -> Depth:
        attrs = self.attributes(url, DEPTH_ATTRIBUTES)
        return Depth(
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def max_message_size(self, url: str) -> int:
        return int(self.attributes(url, ["MaximumMessageSize"]).get("MaximumMessageSize", 262_144))
