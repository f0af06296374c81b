"""doctor: check the configuration and the account against what a safe migration needs.

Each check gives pass, warn or fail, with what was seen and the fix. Nothing is changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from northmigrate.aws.clients import (
    AWS_EXCEPTIONS,
    AwsClients,
    error_code,
    is_loopback,
    shown_url,
    translate,
)
from northmigrate.config import Settings
from northmigrate.errors import NorthmigrateError
from northmigrate.plugin import Migration, load_migration

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

    QueueAttributes = dict[QueueAttributeNameType, str]

Status = Literal["pass", "warn", "fail"]
MIN_RECEIVES = 3
MIN_VISIBILITY_S = 30


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class DoctorReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.to_dict() for check in self.checks]}


class _Doctor:
    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients
        self.checks: list[Check] = []

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def plugin(self) -> Migration[Any] | None:
        spec = self.settings.migration.plugin
        try:
            migration = load_migration(spec)
            migration.model.model_json_schema()
        except NorthmigrateError as exc:
            self.add("plugin", "fail", str(exc), "fix migration.plugin or the module")
            return None
        except Exception as exc:  # the model does not build
            self.add("plugin", "fail", f"{spec}: the model does not build: {exc}", "fix the model")
            return None
        self.add("plugin", "pass", f"{spec} imports; model {migration.model.__name__} builds")
        return migration

    def credentials(self) -> bool:
        endpoint = self.clients.endpoint_url
        session = self.clients.session
        if session.get_credentials() is None and not is_loopback(endpoint):
            self.add(
                "credentials",
                "fail",
                "no AWS credentials found",
                "set AWS_PROFILE or aws.profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            )
            return False
        where = shown_url(endpoint) or "AWS"
        try:
            account = self.clients.account_id()
        except NorthmigrateError as exc:
            self.add("credentials", "fail", f"{where}: {exc}", "check the endpoint and credentials")
            return False
        origin = self.clients.origins.get("region")
        region = f"{self.clients.region} (from {origin})" if origin else self.clients.region
        self.add("credentials", "pass", f"account {account}, region {region}, {where}")
        return True

    def queue_attributes(self, name: str, label: str) -> QueueAttributes | None:
        sqs = self.clients.client("sqs")
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        except AWS_EXCEPTIONS as exc:
            if error_code(exc) in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
                self.add(
                    label, "fail", f"queue {name} does not exist", "run northmigrate provision"
                )
            else:
                self.add(label, "fail", translate(exc, f"queue {name}").message)
            return None
        self.add(label, "pass", f"{name} exists")
        return attrs

    def queues(self) -> None:
        q = self.settings.queue
        main = self.queue_attributes(q.name, "queue")
        dlq = self.queue_attributes(q.dead_letter_name, "dlq")
        if main is None:
            return
        self.redrive(main, dlq)
        visibility = int(main.get("VisibilityTimeout", 0))
        if visibility < MIN_VISIBILITY_S:
            self.add(
                "visibility timeout",
                "warn",
                f"{visibility}s: a record slower than that relies on the worker's heartbeat, and "
                "a Lambda function needs a visibility timeout of at least six times its timeout",
                f"set queue.visibility_timeout to {MIN_VISIBILITY_S} or more and run provision",
            )
        else:
            self.add("visibility timeout", "pass", f"{visibility}s")
        for label, attrs in (("queue", main), ("dlq", dlq)):
            if attrs is None:
                continue
            encrypted = attrs.get("SqsManagedSseEnabled") == "true" or bool(
                attrs.get("KmsMasterKeyId")
            )
            self.add(
                f"{label} encryption",
                "pass" if encrypted else "fail",
                "server-side encryption on" if encrypted else "server-side encryption off",
                "" if encrypted else "run northmigrate provision (turns SSE-SQS on)",
            )
        size = int(main.get("MaximumMessageSize", 262_144))
        if size < q.max_message_size:
            self.add(
                "message size",
                "fail",
                f"the queue accepts {size} bytes, the config says {q.max_message_size}",
                "run northmigrate provision, or lower queue.max_message_size",
            )
        else:
            self.add("message size", "pass", f"the queue accepts messages up to {size} bytes")
        if dlq is not None:
            self.retention(main, dlq)

    def redrive(self, main: QueueAttributes, dlq: QueueAttributes | None) -> None:
        raw = main.get("RedrivePolicy")
        if not raw:
            self.add(
                "redrive policy",
                "fail",
                "the main queue has no DLQ: a record that always fails is retried until it expires",
                "run northmigrate provision",
            )
            return
        policy = json.loads(raw)
        target = str(policy.get("deadLetterTargetArn", ""))
        receives = int(policy.get("maxReceiveCount", 0))
        if dlq is not None and target != dlq.get("QueueArn"):
            self.add(
                "redrive policy",
                "fail",
                f"dead letters go to {target}, not to the configured DLQ",
                "run northmigrate provision",
            )
        elif receives <= self.settings.queue.max_receive_count:
            self.add(
                "redrive policy",
                "warn",
                f"maxReceiveCount is {receives}, not above queue.max_receive_count "
                f"({self.settings.queue.max_receive_count}): SQS may dead-letter a record "
                "before the worker has tried it that often, and without its reason",
                "run northmigrate provision (it sets max_receive_count + receive_headroom)",
            )
        elif self.settings.queue.max_receive_count < MIN_RECEIVES:
            self.add(
                "redrive policy",
                "warn",
                f"queue.max_receive_count is {self.settings.queue.max_receive_count}: a "
                "passing glitch may dead-letter a record",
                f"set queue.max_receive_count to {MIN_RECEIVES} or more",
            )
        else:
            self.add(
                "redrive policy",
                "pass",
                f"the worker dead-letters after {self.settings.queue.max_receive_count} tries; "
                f"SQS after {receives} receives",
            )

    def retention(self, main: QueueAttributes, dlq: QueueAttributes) -> None:
        main_s = int(main.get("MessageRetentionPeriod", 345_600))
        dlq_s = int(dlq.get("MessageRetentionPeriod", 345_600))
        if dlq_s <= main_s:
            self.add(
                "dlq retention",
                "fail",
                f"the DLQ keeps messages {dlq_s}s, the main queue {main_s}s: a dead letter keeps "
                "its original enqueue time, so it may expire before anyone looks",
                "set queue.dlq_retention_s above queue.retention_s (1209600 is the maximum) "
                "and run provision",
            )
        else:
            self.add("dlq retention", "pass", f"{dlq_s}s, longer than the main queue's {main_s}s")


def diagnose(
    settings: Settings,
    clients: AwsClients,
    *,
    extra: list[Callable[[Migration[Any]], Check]] | None = None,
) -> DoctorReport:
    doctor = _Doctor(settings, clients)
    source = settings.source_path or "the environment"
    doctor.add("config", "pass", f"read from {source}")
    migration = doctor.plugin()
    if doctor.credentials():
        doctor.queues()
    if migration is not None:
        for check in extra or []:
            doctor.checks.append(check(migration))
    return DoctorReport(doctor.checks)
