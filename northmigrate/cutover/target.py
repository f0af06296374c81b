"""What a cutover works on: one queue (by name or URL), its dead-letter queue, the event
source mappings that read it, and the functions behind them. Read only.

A queue or a function that does not exist is an ``AwsError`` (exit 3) with one line that
names it, raised before anything is changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from northmigrate.aws import aws_errors, error_code
from northmigrate.aws.sqs.queue import Depth, attributes, depth, queue_name
from northmigrate.consume.tap import MappingState, mappings
from northmigrate.errors import AwsError

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

_MISSING = {"ResourceNotFoundException"}
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
DISABLED = "Disabled"
ENABLED = "Enabled"
WAIT_S = 300.0  # how long a mapping may take to become Enabled or Disabled


@dataclass(frozen=True)
class QueueMapping:
    """One event source mapping of the queue, as a cutover sees it."""

    state: MappingState
    batch_size: int | None
    reports_item_failures: bool

    @property
    def uuid(self) -> str:
        return self.state.uuid

    @property
    def function(self) -> str:
        return self.state.function

    @property
    def enabled(self) -> bool:
        return self.state.enabled

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> QueueMapping:
        batch = data.get("BatchSize")
        return cls(
            state=MappingState.from_api(data),
            batch_size=int(batch) if batch is not None else None,
            reports_item_failures="ReportBatchItemFailures"
            in (data.get("FunctionResponseTypes") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        return self.state.to_dict() | {
            "batch_size": self.batch_size,
            "reports_batch_item_failures": self.reports_item_failures,
        }


@dataclass(frozen=True)
class Function:
    name: str
    arn: str
    timeout_s: int
    role_arn: str


class Target:
    """One queue and the mappings that read it; ``queue`` is a name or a URL."""

    def __init__(
        self,
        sqs: SQSClient,
        lam: LambdaClient,
        queue: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.lam = lam
        self.sleep = sleep
        self.clock = clock
        self.url = self._url(queue)
        self.name = queue_name(self.url)
        self._attributes: dict[str, str] | None = None

    def _url(self, queue: str) -> str:
        is_url = queue.startswith(("https://", "http://"))
        name = queue_name(queue) if is_url else queue
        try:
            if is_url:
                self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
                return queue
            return str(self.sqs.get_queue_url(QueueName=queue)["QueueUrl"])
        except Exception as exc:
            if error_code(exc) in _MISSING_QUEUE:
                raise AwsError(
                    f"queue {name} does not exist", hint="check --queue (a name or a URL)"
                ) from exc
            with aws_errors(f"queue {name}"):
                raise

    def attributes(self, fresh: bool = False) -> dict[str, str]:
        if self._attributes is None or fresh:
            self._attributes = attributes(self.sqs, self.url)
        return self._attributes

    @property
    def arn(self) -> str:
        return self.attributes()["QueueArn"]

    def depth(self) -> Depth:
        return depth(self.sqs, self.url)

    def int_attribute(self, name: str, default: int = 0) -> int:
        value = self.attributes().get(name)
        return int(value) if value not in (None, "") else default

    def dlq_url(self) -> str | None:
        """The URL of the queue's dead-letter queue, or None when it has no redrive policy;
        an AwsError when the policy names a queue that does not exist."""
        policy = self.attributes().get("RedrivePolicy")
        if not policy:
            return None
        arn = str(json.loads(policy).get("deadLetterTargetArn", ""))
        if not arn:
            return None
        parts = arn.split(":")
        try:
            return str(
                self.sqs.get_queue_url(QueueName=parts[-1], QueueOwnerAWSAccountId=parts[4])[
                    "QueueUrl"
                ]
            )
        except Exception as exc:
            if error_code(exc) in _MISSING_QUEUE:
                raise AwsError(
                    f"the dead-letter queue {parts[-1]} of queue {self.name} does not exist"
                ) from exc
            with aws_errors(f"queue {parts[-1]}"):
                raise

    def mappings(self) -> list[QueueMapping]:
        return [QueueMapping.from_api(m) for m in mappings(self.lam, self.arn)]

    def function(self, name: str, flag: str = "--to") -> Function:
        """The function ``name`` (a name or an ARN); AwsError when it does not exist."""
        try:
            conf = self.lam.get_function_configuration(FunctionName=name)
        except Exception as exc:
            if error_code(exc) in _MISSING:
                raise AwsError(f"function {name} does not exist", hint=f"check {flag}") from exc
            with aws_errors(f"function {name}"):
                raise
        return Function(
            name=str(conf.get("FunctionName", name)),
            arn=str(conf.get("FunctionArn", "")),
            timeout_s=int(conf.get("Timeout") or 3),
            role_arn=str(conf.get("Role", "")),
        )

    def wait_state(self, uuid: str, wanted: str, timeout_s: float = WAIT_S) -> QueueMapping:
        """Poll the mapping until its state is ``wanted`` (Enabled or Disabled)."""
        deadline = self.clock() + timeout_s
        while True:
            with aws_errors(f"event source mapping {uuid}"):
                data = self.lam.get_event_source_mapping(UUID=uuid)
            if data.get("State") == wanted:
                return QueueMapping.from_api(data)
            if self.clock() >= deadline:
                raise AwsError(
                    f"event source mapping {uuid} is {data.get('State')}, not {wanted}, "
                    f"after {timeout_s:.0f} s"
                )
            self.sleep(1.0)

    def settle(self, uuid: str, timeout_s: float = WAIT_S) -> QueueMapping:
        """The mapping once no change is in progress (AWS refuses an update meanwhile)."""
        deadline = self.clock() + timeout_s
        while True:
            with aws_errors(f"event source mapping {uuid}"):
                data = self.lam.get_event_source_mapping(UUID=uuid)
            if data.get("State") in {ENABLED, DISABLED} or self.clock() >= deadline:
                return QueueMapping.from_api(data)
            self.sleep(1.0)

    def set_enabled(self, uuid: str, enabled: bool, **changes: Any) -> QueueMapping:
        """Enable or disable one mapping (with ``changes``) and wait until it is so."""
        current = self.settle(uuid)
        wanted = ENABLED if enabled else DISABLED
        if current.state.state != wanted or changes:
            with aws_errors(f"update event source mapping {uuid}"):
                self.lam.update_event_source_mapping(UUID=uuid, Enabled=enabled, **changes)
        return self.wait_state(uuid, wanted)
