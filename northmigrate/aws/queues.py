"""The migration's two queues: the configured names to URLs (cached), and what northmigrate
asks of them (see :mod:`northmigrate.aws.sqs.queue`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from northmigrate.aws.clients import aws_errors
from northmigrate.aws.sqs import queue as sqs_queue
from northmigrate.aws.sqs.queue import Depth
from northmigrate.config import QueueSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType


class Queues:
    """Looks up (and caches) the URLs of the main queue and its DLQ."""

    def __init__(self, sqs: SQSClient, settings: QueueSettings) -> None:
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

    def attributes(
        self, url: str, names: Sequence[QueueAttributeFilterType] | None = None
    ) -> dict[str, str]:
        return sqs_queue.attributes(self.sqs, url, names)

    def arn(self, url: str) -> str:
        return sqs_queue.queue_arn(self.sqs, url)

    def depth(self, url: str) -> Depth:
        return sqs_queue.depth(self.sqs, url)

    def max_message_size(self, url: str) -> int:
        return sqs_queue.max_message_size(self.sqs, url)
