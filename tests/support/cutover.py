"""A queue served by an old function behind an event source mapping, and a new function,
on in-process moto (no message is ever sent to the mapped queue: moto would invoke)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session

from northmigrate.aws import share_service_models
from northmigrate.cutover import Cutover, Target

ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": "arn:aws:sqs:us-east-1:*:intake*",
        }
    ],
}


def aws_client(service: str, **kwargs: Any) -> Any:
    """A client on a session of its own that shares the process's service models."""
    core = botocore.session.get_session()
    session = boto3.session.Session(botocore_session=core)
    share_service_models(core)
    return session.client(service, **kwargs)  # type: ignore[call-overload]


def code() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return out.getvalue()


@dataclass
class FakeTime:
    """A clock that moves only when something sleeps; ``on_sleep`` runs at each sleep."""

    now: float = 0.0
    on_sleep: list[Callable[[], None]] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for hook in self.on_sleep:
            hook()

    def clock(self) -> float:
        return self.now


class EnabledWatch:
    """After every Lambda call, how many mappings of the queue are not Disabled (read with a
    client of its own); ``most`` is the largest count seen."""

    def __init__(self, lam: Any, queue_arn: str) -> None:
        self.reader = aws_client("lambda", region_name="us-east-1")
        self.queue_arn = queue_arn
        self.most = 0
        self.updates: list[dict[str, Any]] = []
        lam.meta.events.register("after-call.lambda", self._after)
        lam.meta.events.register("provide-client-params.lambda", self._params)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in {"UpdateEventSourceMapping", "CreateEventSourceMapping"}:
            self.updates.append({"op": model.name, **params})

    def _after(self, **_: Any) -> None:
        found = self.reader.list_event_source_mappings(EventSourceArn=self.queue_arn)
        live = [m for m in found["EventSourceMappings"] if m.get("State") != "Disabled"]
        self.most = max(self.most, len(live))


@dataclass
class Stage:
    sqs: Any
    lam: Any
    iam: Any
    cloudwatch: Any
    url: str
    dlq_url: str
    arn: str
    old_uuid: str
    time: FakeTime
    watch: EnabledWatch

    def target(self, queue: str = "intake") -> Target:
        return Target(self.sqs, self.lam, queue, sleep=self.time.sleep, clock=self.time.clock)

    def cutover(self, queue: str = "intake", **kwargs: Any) -> Cutover:
        return Cutover(
            self.target(queue),
            by="operator test",
            cloudwatch=self.cloudwatch,
            iam=self.iam,
            now=lambda: "2026-12-06T21:00:00Z",
            sleep=self.time.sleep,
            **kwargs,
        )

    def mappings(self) -> dict[str, str]:
        """Each function's mapping state, by function name."""
        found = self.lam.list_event_source_mappings(EventSourceArn=self.arn)
        return {
            m["FunctionArn"].rsplit(":", 1)[-1]: m["State"] for m in found["EventSourceMappings"]
        }

    def tags(self) -> dict[str, str]:
        return dict(self.sqs.list_queue_tags(QueueUrl=self.url).get("Tags") or {})

    def function(self, name: str, timeout: int = 5, role: str = "consumer") -> None:
        role_arn = self.iam.get_role(RoleName=role)["Role"]["Arn"]
        self.lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": code()},
            Timeout=timeout,
        )


def role(iam: Any, name: str, policy: dict[str, Any] | None) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="consume", PolicyDocument=json.dumps(policy))


def stage(visibility: int = 60, dlq: bool = True, retention: int = 345_600) -> Stage:
    sqs = aws_client("sqs", region_name="us-east-1")
    lam = aws_client("lambda", region_name="us-east-1")
    iam = aws_client("iam", region_name="us-east-1")
    cloudwatch = aws_client("cloudwatch", region_name="us-east-1")
    dlq_url = sqs.create_queue(QueueName="intake-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    attributes = {"VisibilityTimeout": str(visibility), "MessageRetentionPeriod": str(retention)}
    if dlq:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"}
        )
    url = sqs.create_queue(QueueName="intake", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    role(iam, "consumer", ROLE_POLICY)
    time = FakeTime()
    watch = EnabledWatch(lam, arn)
    made = Stage(sqs, lam, iam, cloudwatch, url, dlq_url, arn, "", time, watch)
    made.function("old")
    made.function("new")
    made.old_uuid = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName="old", Enabled=True, BatchSize=10
    )["UUID"]
    return made
