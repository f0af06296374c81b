"""What northmigrate asks of a queue: its name, ARN, depth, size limit, visibility; the
fields a FIFO queue needs on every send."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import aws_errors

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType

DEFAULT_MAX_MESSAGE_SIZE = 262_144
DEPTH_ATTRIBUTES: list[QueueAttributeFilterType] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]
FIFO_SUFFIX = ".fifo"


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def is_fifo(url: str) -> bool:
    return url.endswith(FIFO_SUFFIX)


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


def attributes(
    sqs: SQSClient, url: str, names: Sequence[QueueAttributeFilterType] | None = None
) -> dict[str, str]:
    """The queue's attributes (``names``, or all); AwsError (exit 3) when it cannot be read."""
    with aws_errors(f"queue {queue_name(url)}"):
        response = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names or ["All"])
    return {str(name): value for name, value in response.get("Attributes", {}).items()}


def depth(sqs: SQSClient, url: str) -> Depth:
    """The queue's depth: visible, in flight (received, not deleted), delayed."""
    values = attributes(sqs, url, DEPTH_ATTRIBUTES)
    return Depth(
        visible=int(values.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(values.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(values.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def queue_arn(sqs: SQSClient, url: str) -> str:
    return attributes(sqs, url, ["QueueArn"])["QueueArn"]


def max_message_size(sqs: SQSClient, url: str) -> int:
    value = attributes(sqs, url, ["MaximumMessageSize"]).get("MaximumMessageSize")
    return int(value) if value else DEFAULT_MAX_MESSAGE_SIZE


def fifo_fields(group: str, deduplication: str) -> dict[str, Any]:
    """``MessageGroupId`` (at most 128 characters) and a ``MessageDeduplicationId`` derived
    from ``deduplication`` (a digest: any text, always a valid id)."""
    return {
        "MessageGroupId": group[:128] or "northmigrate",
        "MessageDeduplicationId": hashlib.sha256(deduplication.encode()).hexdigest(),
    }
