"""Create or update, idempotently, the main queue, its DLQ and what the plugin needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS, AwsClients, aws_errors, error_code, translate
from northmigrate.config import Settings
from northmigrate.errors import PluginError
from northmigrate.plugin import Migration, MigrationContext, SetupResult
from northmigrate.redact import error_text

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

    QueueAttributes = dict[QueueAttributeNameType, str]

# Attributes SQS returns as JSON text: compared parsed, not as strings.
_JSON_ATTRIBUTES = {"RedrivePolicy", "RedriveAllowPolicy", "Policy"}
_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
DLQ_MAX_MESSAGE_SIZE = 1_048_576


@dataclass
class Change:
    resource: str
    name: str
    action: str  # created | updated | unchanged
    changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "name": self.name,
            "action": self.action,
            "changed": self.changed,
        }


@dataclass
class ProvisionReport:
    queue_url: str
    dlq_url: str
    queue_arn: str
    dlq_arn: str
    changes: list[Change]

    @property
    def changed(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue_url": self.queue_url,
            "dlq_url": self.dlq_url,
            "queue_arn": self.queue_arn,
            "dlq_arn": self.dlq_arn,
            "changed": self.changed,
            "changes": [change.to_dict() for change in self.changes],
        }


def tls_only_policy(queue_arn: str) -> str:
    """A queue policy that denies every request not made over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        separators=(",", ":"),
    )


def _same(name: str, current: str | None, desired: str) -> bool:
    if current is None:
        return False
    if name in _JSON_ATTRIBUTES:
        try:
            return bool(json.loads(current) == json.loads(desired))
        except ValueError:
            return False
    return current == desired


def _ensure_queue(sqs: SQSClient, name: str, fifo: bool) -> tuple[str, QueueAttributes, bool]:
    """(url, current attributes, created) for the queue, created when missing."""
    created = False
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except sqs.exceptions.ClientError as exc:
        if error_code(exc) not in _MISSING:
            raise
        attributes: QueueAttributes = {"FifoQueue": "true"} if fifo else {}
        url = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        created = True
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return url, current, created


def _apply(
    sqs: SQSClient, url: str, current: QueueAttributes, desired: QueueAttributes
) -> list[str]:
    """Set the attributes that differ; the names of those that really changed."""
    differing = {k: v for k, v in desired.items() if not _same(k, current.get(k), v)}
    if not differing:
        return []
    # All of them, not only the differing ones: some endpoints (moto) drop an attribute such
    # as Policy when a SetQueueAttributes call does not repeat it.
    sqs.set_queue_attributes(QueueUrl=url, Attributes=desired)
    after = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # An endpoint that accepts an attribute but never reports it back (moto does so with
    # RedriveAllowPolicy) cannot be compared: it is written each time, not counted.
    return sorted(k for k in differing if k in current or k in after)


def _change(resource: str, name: str, created: bool, changed: list[str]) -> Change:
    if created:
        return Change(resource, name, "created")
    return (
        Change(resource, name, "updated", changed)
        if changed
        else Change(resource, name, "unchanged")
    )


def queue_attributes(
    settings: Settings, *, main_arn: str, dlq_arn: str
) -> tuple[QueueAttributes, QueueAttributes]:
    """(DLQ, main queue) attributes as ``provision`` sets them (``deploy --template`` writes
    the same): SSE, the TLS-only policy, sizes, retentions, the redrive policy and the DLQ's
    redrive-allow policy."""
    q = settings.queue
    common: QueueAttributes = {"SqsManagedSseEnabled": "true"}
    dlq: QueueAttributes = common | {
        # SQS's largest: a dead letter keeps its whole body and still has room for its
        # reason and provenance (see northmigrate.consume.resend).
        "MaximumMessageSize": str(DLQ_MAX_MESSAGE_SIZE),
        "Policy": tls_only_policy(dlq_arn),
        "MessageRetentionPeriod": str(q.dlq_retention_s),
        "RedriveAllowPolicy": json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": [main_arn]},
            separators=(",", ":"),
        ),
    }
    main: QueueAttributes = common | {
        "MaximumMessageSize": str(q.max_message_size),
        "Policy": tls_only_policy(main_arn),
        "VisibilityTimeout": str(q.visibility_timeout),
        "MessageRetentionPeriod": str(q.retention_s),
        "ReceiveMessageWaitTimeSeconds": "20",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q.sqs_max_receive_count},
            separators=(",", ":"),
        ),
    }
    return dlq, main


def provision(
    clients: AwsClients, settings: Settings, migration: Migration[Any] | None
) -> ProvisionReport:
    """Make the queues (and the plugin's resources) match the configuration."""
    q = settings.queue
    sqs = clients.client("sqs")
    with aws_errors(f"provision queues {q.name} and {q.dead_letter_name}"):
        dlq_url, dlq_now, dlq_created = _ensure_queue(sqs, q.dead_letter_name, q.fifo)
        main_url, main_now, main_created = _ensure_queue(sqs, q.name, q.fifo)
        dlq_arn, main_arn = dlq_now["QueueArn"], main_now["QueueArn"]
        dlq_wanted, main_wanted = queue_attributes(settings, main_arn=main_arn, dlq_arn=dlq_arn)
        dlq_changed = _apply(sqs, dlq_url, dlq_now, dlq_wanted)
        main_changed = _apply(sqs, main_url, main_now, main_wanted)
    changes = [
        _change("queue", q.name, main_created, main_changed),
        _change("dlq", q.dead_letter_name, dlq_created, dlq_changed),
    ]
    if migration is not None and migration.setup is not None:
        ctx = MigrationContext(options=settings.migration.options, aws=clients)
        changes.extend(Change(r.resource, r.name, r.action) for r in _setup(migration, ctx))
    return ProvisionReport(main_url, dlq_url, main_arn, dlq_arn, changes)


def _setup(migration: Migration[Any], ctx: MigrationContext) -> list[SetupResult]:
    """The plugin's ``setup``: an AWS error is exit 3, anything else the plugin raises a
    one-line PluginError (exit 2), never a traceback."""
    assert migration.setup is not None
    try:
        return list(migration.setup(ctx))
    except AWS_EXCEPTIONS as exc:
        raise translate(exc, f"{migration.name}: setup (provision)") from exc
    except Exception as exc:
        raise PluginError(
            f"{migration.name}: setup failed: {type(exc).__name__}: {error_text(exc)}"
        ) from exc
