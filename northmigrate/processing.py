"""The one per-record path: one SQS message in, one outcome out.

The local worker and the Lambda handler both call :meth:`Processor.process`. It accepts a
message as ``ReceiveMessage`` returns it (``MessageId``, ``ReceiptHandle``, ``Body``,
``Attributes``, ``MessageAttributes``) or as a Lambda SQS event record (``messageId``,
``receiptHandle``, ``body``, ``attributes``, ``messageAttributes``), then:

1. parses the envelope: a body that is not one is dead-lettered (``unreadable``);
2. checks it belongs to this migration: another migration's envelope is dead-lettered
   (``unreadable``);
3. validates the record with the plugin's model again: schema drift is dead-lettered
   (``invalid``);
4. calls ``handler(record, ctx)``; ``PermanentError`` is dead-lettered at once
   (``permanent``); any other exception is a retry, except on the last allowed attempt
   (``attempt >= max_receive_count``), where it is dead-lettered (``exhausted``).

Dead-lettering is a move done here: ``SendMessage`` to the DLQ first (the envelope with a
failure entry appended, or an unreadable body unchanged; the message attributes kept plus
``northmigrate.reason`` and ``northmigrate.failure_kind``), and only when SQS confirmed it
does the outcome say the message may be deleted from the main queue. If the send fails the
message stays (a retry), and the queue's redrive policy remains the backstop.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from northmigrate import envelope
from northmigrate.aws import AWS_EXCEPTIONS, AwsClients, translate
from northmigrate.envelope import EnvelopeError, utc_now
from northmigrate.plugin import Migration, MigrationContext, PermanentError
from northmigrate.redact import scrub, sensitive_values
from northmigrate.validation import describe_validation

log = logging.getLogger("northmigrate.processing")

REASON_LIMIT = 1_000  # characters of a reason kept on a dead letter
SQS_MAX_MESSAGE_ATTRIBUTES = 10
KIND_PERMANENT = "permanent"
KIND_EXHAUSTED = "exhausted"
KIND_INVALID = "invalid"
KIND_UNREADABLE = "unreadable"


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class InMessage:
    """An SQS message, whichever shape it arrived in."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    group_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_attributes: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        return max(1, self.receive_count)


def _attribute(value: Mapping[str, Any]) -> dict[str, Any] | None:
    """A message attribute in the shape SendMessage takes (either input shape)."""
    data_type = value.get("DataType", value.get("dataType"))
    if not isinstance(data_type, str):
        return None
    out: dict[str, Any] = {"DataType": data_type}
    string = value.get("StringValue", value.get("stringValue"))
    binary = value.get("BinaryValue", value.get("binaryValue"))
    if string is not None:
        out["StringValue"] = str(string)
    elif binary is not None:
        out["BinaryValue"] = binary
    else:
        return None
    return out


def normalise(message: Mapping[str, Any] | InMessage) -> InMessage:
    """Read a ReceiveMessage message or a Lambda SQS event record."""
    if isinstance(message, InMessage):
        return message
    lambda_shape = "messageId" in message

    def get(receive_name: str, lambda_name: str) -> Any:
        return message.get(lambda_name if lambda_shape else receive_name)

    attributes = get("Attributes", "attributes") or {}
    raw_attrs = get("MessageAttributes", "messageAttributes") or {}
    message_attributes: dict[str, dict[str, Any]] = {}
    for name, value in raw_attrs.items():
        if isinstance(value, Mapping) and (converted := _attribute(value)) is not None:
            message_attributes[name] = converted
    try:
        count = int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        count = 1
    return InMessage(
        message_id=str(get("MessageId", "messageId") or ""),
        receipt_handle=str(get("ReceiptHandle", "receiptHandle") or ""),
        body=str(get("Body", "body") or ""),
        receive_count=count,
        group_id=attributes.get("MessageGroupId"),
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_attributes=message_attributes,
    )


@dataclass
class Outcome:
    """What became of one message. ``delete`` says whether it may leave the main queue."""

    status: Status
    message: InMessage
    record_id: str | None = None
    kind: str | None = None  # the failure kind of a dead letter
    reason: str | None = None  # "<ErrorClass>: <message>", sensitive values scrubbed
    error: BaseException | None = None
    dead_letter_error: str | None = None  # the DLQ send failed: the message stays

    @property
    def delete(self) -> bool:
        return self.status in (Status.SUCCEEDED, Status.DEAD_LETTERED)


def _reason(error_class: str, text: str, secrets: set[str]) -> str:
    reason = scrub(f"{error_class}: {text}".rstrip(": ").strip(), secrets)
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"


class Processor:
    """Turns one message into one outcome for a migration (see the module docstring)."""

    def __init__(
        self,
        migration: Migration[Any],
        *,
        clients: AwsClients,
        options: Mapping[str, Any],
        dlq_url: str,
        max_receive_count: int,
        fifo: bool = False,
        sqs: Any | None = None,
        clock: Any = utc_now,
    ) -> None:
        self.migration = migration
        self.clients = clients
        self.options = options
        self.dlq_url = dlq_url
        self.max_receive_count = max_receive_count
        self.fifo = fifo
        self.sqs = sqs if sqs is not None else clients.client("sqs")
        self._clock = clock
        self.plugin_log = logging.getLogger(f"northmigrate.plugin.{migration.name}")

    def process(self, raw: Mapping[str, Any] | InMessage) -> Outcome:
        message = normalise(raw)
        try:
            env = envelope.parse(message.body)
        except EnvelopeError as exc:
            reason = _reason("EnvelopeError", str(exc), set())
            return self._dead_letter(message, None, KIND_UNREADABLE, reason, exc)
        if env.migration != self.migration.name:
            reason = (
                f"ForeignMessage: an envelope of migration {env.migration!r}, "
                f"not {self.migration.name!r}"
            )
            return self._dead_letter(message, env.record_id, KIND_UNREADABLE, reason, None)
        secrets = sensitive_values(env.record, self.migration.sensitive)
        try:
            record: BaseModel = self.migration.model.model_validate(env.record)
        except ValidationError as exc:
            reason = _reason("ValidationError", describe_validation(exc), secrets)
            return self._dead_letter(message, env.record_id, KIND_INVALID, reason, exc)
        ctx = MigrationContext(
            options=self.options,
            aws=self.clients,
            attempt=message.attempt,
            message_id=message.message_id,
            log=self.plugin_log,
        )
        try:
            self.migration.handler(record, ctx)
        except PermanentError as exc:
            reason = _reason(type(exc).__name__, str(exc), secrets)
            return self._dead_letter(message, env.record_id, KIND_PERMANENT, reason, exc)
        except Exception as exc:  # the handler's failure, whatever it is: retried
            reason = _reason(type(exc).__name__, str(exc), secrets)
            if message.attempt >= self.max_receive_count:
                return self._dead_letter(message, env.record_id, KIND_EXHAUSTED, reason, exc)
            return Outcome(Status.RETRY, message, env.record_id, None, reason, exc)
        return Outcome(Status.SUCCEEDED, message, env.record_id)

    # -- dead letters ---------------------------------------------------------------------

    def _dead_letter(
        self,
        message: InMessage,
        record_id: str | None,
        kind: str,
        reason: str,
        error: BaseException | None,
    ) -> Outcome:
        error_class = reason.split(":", 1)[0]
        entry = envelope.failure(
            kind=kind,
            error_class=error_class,
            reason=reason,
            attempt=message.attempt,
            migration=self.migration.name,
            version=self.migration.version,
            at=self._now(),
        )
        # An envelope carries the failure in its history; an unreadable body goes unchanged.
        body = self._with_failure(message.body, entry)
        try:
            self._send(message, body, record_id, kind, reason)
        except AWS_EXCEPTIONS as exc:
            why = translate(exc, "SendMessage to the DLQ").message
            log.warning(
                "could not dead-letter message %s (%s): %s; it stays on the queue",
                message.message_id,
                reason,
                why,
            )
            return Outcome(Status.RETRY, message, record_id, kind, reason, error, why)
        log.info("dead-lettered message %s (record %s): %s", message.message_id, record_id, reason)
        return Outcome(Status.DEAD_LETTERED, message, record_id, kind, reason, error)

    def _now(self) -> datetime:
        now = self._clock()
        assert isinstance(now, datetime)
        return now

    @staticmethod
    def _with_failure(body: str, entry: dict[str, Any]) -> str:
        """The body with ``entry`` appended to its failures; an unreadable body unchanged.

        Works on the JSON itself, not on an ``Envelope``, so that keys this version does not
        know (a newer producer's) travel on untouched.
        """
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return body
        if not isinstance(data, dict) or data.get(envelope.MARKER) != envelope.ENVELOPE_VERSION:
            return body
        failures = data.get("failures")
        failures = (
            [f for f in failures if isinstance(f, dict)] if isinstance(failures, list) else []
        )
        failures.append(entry)
        data["failures"] = failures[-envelope.HISTORY_LIMIT :]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def _send(
        self, message: InMessage, body: str, record_id: str | None, kind: str, reason: str
    ) -> None:
        ours = {
            envelope.ATTR_REASON: {"DataType": "String", "StringValue": reason},
            envelope.ATTR_FAILURE_KIND: {"DataType": "String", "StringValue": kind},
        }
        kept = {k: v for k, v in message.message_attributes.items() if k not in ours}
        room = SQS_MAX_MESSAGE_ATTRIBUTES - len(ours)
        if len(kept) > room:  # northmigrate's own attributes first, then the others
            names = sorted(kept, key=lambda n: (not n.startswith("northmigrate."), n))[:room]
            kept = {name: kept[name] for name in names}
        request: dict[str, Any] = {
            "QueueUrl": self.dlq_url,
            "MessageBody": body,
            "MessageAttributes": kept | ours,
        }
        if self.fifo:
            group = message.group_id or record_id or message.message_id or "northmigrate"
            request["MessageGroupId"] = group[:128]
            # The same message dead-lettered twice (a delete that failed) is sent once.
            request["MessageDeduplicationId"] = hashlib.sha256(
                f"{message.message_id}\0{kind}".encode()
            ).hexdigest()
        self.sqs.send_message(**request)
