"""The one per-record path: one SQS message in, one outcome out.

The local worker and the Lambda handler both call :meth:`Processor.process`. It accepts a
message as ``ReceiveMessage`` returns it (``MessageId``, ``ReceiptHandle``, ``Body``,
``Attributes``, ``MessageAttributes``) or as a Lambda SQS event record (``messageId``,
``receiptHandle``, ``body``, ``attributes``, ``messageAttributes``; a binary attribute's
``binaryValue`` there is base64 text, decoded here to its bytes), then:

1. parses the envelope (numbers exact, :mod:`northmigrate.records`): a body that is not one
   is dead-lettered (``unreadable``);
2. checks it belongs to this migration: another migration's envelope is dead-lettered
   (``unreadable``);
3. validates the record with the plugin's model again, the same way ``validate`` did
   (:func:`northmigrate.records.build`): schema drift is dead-lettered (``invalid``), and so
   is a model validator that raises anything at all;
4. calls ``handler(record, ctx)``; ``PermanentError`` is dead-lettered at once
   (``permanent``); any other exception is a retry, except on the last allowed attempt
   (``attempt >= max_receive_count``), where it is dead-lettered (``exhausted``).

**Attempts.** On a standard queue the attempt is the envelope's ``attempts`` plus one, and
a retry is a new copy of the message (``attempts`` one higher, the failure in its history,
a delay of the backoff) sent to the main queue; only when SQS confirmed the copy does the
outcome (``REQUEUED``) allow the old one to be deleted. A receive that tried nothing (a
peek, a hand-back, a killed worker) never counts as an attempt. When that send fails, the
retry stays in place (``RETRY``: the visibility backoff), and the same attempt is made
again. On a FIFO queue a retry always stays in place, to keep its group's order, and the
attempt is SQS's receive count.

**Dead letters** are a move done here: ``SendMessage`` to the DLQ first (see
:mod:`northmigrate.resend`: the body kept, the failure and provenance added, fitted under
the DLQ's size limit), and only when SQS confirmed it does the outcome allow the message to
be deleted from the main queue. If the send fails the message stays (a retry in place),
and the queue's redrive policy remains the backstop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from northmigrate import envelope, records, resend
from northmigrate.aws import AWS_EXCEPTIONS, AwsClients, translate
from northmigrate.envelope import EnvelopeError, utc_now
from northmigrate.plugin import Migration, MigrationContext, PermanentError
from northmigrate.redact import Scrubber, error_text, sensitive_leaves
from northmigrate.validation import describe_validation

log = logging.getLogger("northmigrate.processing")

REASON_LIMIT = 1_000  # characters of a reason kept on a dead letter
SQS_MAX_DELAY_S = 900  # the longest DelaySeconds SQS takes: a retry's copy waits at most this
DEFAULT_MAX_MESSAGE_SIZE = 262_144
KIND_RETRY = "retry"
KIND_PERMANENT = "permanent"
KIND_EXHAUSTED = "exhausted"
KIND_INVALID = "invalid"
KIND_UNREADABLE = "unreadable"


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # tried again in place: the message stays (visibility backoff)
    REQUEUED = "requeued"  # tried again as a new, delayed copy: the message may go
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

    @property
    def first_received_at(self) -> str | None:
        """When SQS first handed this message out (ISO), if the receive asked for it."""
        raw = self.attributes.get("ApproximateFirstReceiveTimestamp")
        try:
            return envelope.iso(datetime.fromtimestamp(int(raw) / 1000.0, UTC)) if raw else None
        except (TypeError, ValueError, OverflowError, OSError):
            return None


def _attribute(value: Mapping[str, Any], *, lambda_shape: bool) -> dict[str, Any] | None:
    """A message attribute in the shape SendMessage takes (either input shape).

    A Lambda event carries a binary value as base64 text: it is decoded to the bytes it
    stands for, so that a copy holds the original bytes, not their base64 spelling.
    """
    data_type = value.get("DataType", value.get("dataType"))
    if not isinstance(data_type, str):
        return None
    out: dict[str, Any] = {"DataType": data_type}
    string = value.get("StringValue", value.get("stringValue"))
    binary = value.get("BinaryValue", value.get("binaryValue"))
    if string is not None:
        out["StringValue"] = str(string)
    elif binary is not None:
        if lambda_shape and isinstance(binary, str):
            try:
                binary = base64.b64decode(binary, validate=True)
            except (binascii.Error, ValueError):
                return None
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
        if (
            isinstance(value, Mapping)
            and (converted := _attribute(value, lambda_shape=lambda_shape)) is not None
        ):
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
    attempt: int = 1
    delay_s: int | None = None  # a retry: seconds before it is tried again

    @property
    def delete(self) -> bool:
        return self.status in (Status.SUCCEEDED, Status.DEAD_LETTERED, Status.REQUEUED)

    @property
    def retried(self) -> bool:
        return self.status in (Status.RETRY, Status.REQUEUED)


def _reason(error_class: str, text: str, scrubber: Scrubber) -> str:
    reason = scrubber.scrub(f"{error_class}: {text}".rstrip(": ").strip())
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"


def _no_delay(attempt: int) -> int:
    return 0


class Processor:
    """Turns one message into one outcome for a migration (see the module docstring).

    ``queue_url`` is the main queue: with it, a retry on a standard queue is a delayed copy
    sent there (``REQUEUED``); without it, every retry stays in place (``RETRY``).
    ``retry_delay(attempt)`` gives the backoff in seconds.
    """

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
        queue_url: str | None = None,
        retry_delay: Callable[[int], int] = _no_delay,
    ) -> None:
        self.migration = migration
        self.clients = clients
        self.options = options
        self.dlq_url = dlq_url
        self.queue_url = queue_url
        self.max_receive_count = max_receive_count
        self.fifo = fifo
        self.sqs = sqs if sqs is not None else clients.client("sqs")
        self.retry_delay = retry_delay
        self._clock = clock
        self._size_limits: dict[str, int] = {}
        self.plugin_log = logging.getLogger(f"northmigrate.plugin.{migration.name}")

    def process(self, raw: Mapping[str, Any] | InMessage) -> Outcome:
        message = normalise(raw)
        try:
            env = envelope.parse(message.body)
        except EnvelopeError as exc:
            reason = _reason("EnvelopeError", str(exc), Scrubber.for_values(()))
            return self._dead_letter(message, None, None, KIND_UNREADABLE, reason, exc, 0)
        attempt = self._attempt(message, env)
        if env.migration != self.migration.name:
            reason = (
                f"ForeignMessage: an envelope of migration {env.migration!r}, "
                f"not {self.migration.name!r}"
            )
            return self._dead_letter(
                message, env, env.record_id, KIND_UNREADABLE, reason, None, attempt
            )
        # Every text made of an exception goes through the record's scrubber: its values in
        # every form a text may give them (repr, escapes, dates, truncated fragments).
        scrubber = Scrubber.for_record(env.record, self.migration.sensitive)
        try:
            record: BaseModel = records.build(self.migration.model, env.record)
        except ValidationError as exc:
            reason = _reason("ValidationError", describe_validation(exc), scrubber)
            return self._dead_letter(
                message, env, env.record_id, KIND_INVALID, reason, exc, attempt
            )
        except Exception as exc:  # a model validator of the plugin raised something else
            reason = _reason(type(exc).__name__, error_text(exc), scrubber)
            return self._dead_letter(
                message, env, env.record_id, KIND_INVALID, reason, exc, attempt
            )
        scrubber = scrubber.extended(sensitive_leaves(record, self.migration.sensitive))
        ctx = MigrationContext(
            options=self.options,
            aws=self.clients,
            attempt=attempt,
            message_id=message.message_id,
            log=self.plugin_log,
        )
        try:
            self.migration.handler(record, ctx)
        except PermanentError as exc:
            reason = _reason(type(exc).__name__, error_text(exc), scrubber)
            return self._dead_letter(
                message, env, env.record_id, KIND_PERMANENT, reason, exc, attempt
            )
        except (Exception, SystemExit) as exc:  # the handler's failure, whatever it is: retried
            reason = _reason(type(exc).__name__, error_text(exc), scrubber)
            if attempt >= self.max_receive_count:
                return self._dead_letter(
                    message, env, env.record_id, KIND_EXHAUSTED, reason, exc, attempt
                )
            return self._retry(message, env, reason, exc, attempt)
        return Outcome(Status.SUCCEEDED, message, env.record_id, attempt=attempt)

    def _attempt(self, message: InMessage, env: envelope.Envelope) -> int:
        if self.fifo or self.queue_url is None:
            return max(message.attempt, env.attempts + 1)
        return env.attempts + 1

    def _origin(self, message: InMessage, env: envelope.Envelope | None) -> dict[str, Any]:
        """The record's first message: the envelope's ``origin``, else the provenance
        attribute of an earlier dead-lettering (a body that is not an envelope, redriven),
        else this message."""
        if env is not None and env.origin:
            return env.origin
        earlier = message.message_attributes.get(envelope.ATTR_ORIGIN, {}).get("StringValue")
        if earlier:
            try:
                found = json.loads(earlier)
            except ValueError:
                found = None
            if isinstance(found, dict) and isinstance(found.get("message_id"), str):
                first = found.get("first_message_id") or found["message_id"]
                return envelope.origin(
                    str(first), str(found.get("queue", "")), found.get("first_received_at")
                )
        queue = (self.queue_url or "").rstrip("/").rsplit("/", 1)[-1]
        return envelope.origin(message.message_id, queue, message.first_received_at)

    # -- retries --------------------------------------------------------------------------

    def _retry(
        self,
        message: InMessage,
        env: envelope.Envelope,
        reason: str,
        error: BaseException,
        attempt: int,
    ) -> Outcome:
        delay = self.retry_delay(attempt)
        if self.fifo or self.queue_url is None:
            return Outcome(
                Status.RETRY, message, env.record_id, None, reason, error, None, attempt, delay
            )
        delay = min(delay, SQS_MAX_DELAY_S)
        entry = self._entry(KIND_RETRY, reason, attempt, message)
        copy = resend.build(
            message.body,
            entry,
            kept=message.message_attributes,
            ours=resend.no_attributes,
            limit=self._size_limit(self.queue_url),
            attempts=attempt,
            origin=self._origin(message, env),
            unchanged_last=False,
        )
        if not copy.fits:  # within a few bytes of the limit: it cannot carry its count
            log.warning(
                "record %s is too large to carry its attempt count in a copy; it is tried "
                "again in place",
                env.record_id,
            )
            return Outcome(
                Status.RETRY, message, env.record_id, None, reason, error, None, attempt, delay
            )
        try:
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=copy.body,
                MessageAttributes=copy.attributes,  # type: ignore[arg-type]
                DelaySeconds=delay,
            )
        except AWS_EXCEPTIONS as exc:
            why = translate(exc, "SendMessage of a retry to the main queue").message
            log.warning(
                "could not send the retry of message %s (%s); it is tried again in place",
                message.message_id,
                why,
            )
            return Outcome(
                Status.RETRY, message, env.record_id, None, reason, error, None, attempt, delay
            )
        return Outcome(
            Status.REQUEUED, message, env.record_id, None, reason, error, None, attempt, delay
        )

    # -- dead letters ---------------------------------------------------------------------

    def _entry(self, kind: str, reason: str, attempt: int, message: InMessage) -> dict[str, Any]:
        return envelope.failure(
            kind=kind,
            error_class=reason.split(":", 1)[0],
            reason=reason,
            attempt=attempt,
            migration=self.migration.name,
            version=self.migration.version,
            at=self._now(),
            message_id=message.message_id,
        )

    def _dead_letter(
        self,
        message: InMessage,
        env: envelope.Envelope | None,
        record_id: str | None,
        kind: str,
        reason: str,
        error: BaseException | None,
        attempt: int,
    ) -> Outcome:
        origin = self._origin(message, env)
        provenance = dict(origin, message_id=message.message_id)
        if origin.get("message_id") != message.message_id:
            provenance["first_message_id"] = origin.get("message_id")
        copy = resend.build(
            message.body,
            self._entry(kind, reason, attempt, message),
            kept=message.message_attributes,
            ours=resend.dead_letter_attributes(kind, provenance),
            limit=self._size_limit(self.dlq_url),
            attempts=0,  # a record brought back from the DLQ gets a whole set of tries
            origin=origin,
        )
        try:
            self._send_dead_letter(message, copy, record_id, kind)
        except AWS_EXCEPTIONS as exc:
            why = translate(exc, "SendMessage to the DLQ").message
            log.warning(
                "could not dead-letter message %s (%s): %s; it stays on the queue",
                message.message_id,
                reason,
                why,
            )
            return Outcome(
                Status.RETRY, message, record_id, kind, reason, error, why, attempt, None
            )
        log.info("dead-lettered message %s (record %s): %s", message.message_id, record_id, reason)
        return Outcome(Status.DEAD_LETTERED, message, record_id, kind, reason, error, None, attempt)

    def _now(self) -> datetime:
        now = self._clock()
        assert isinstance(now, datetime)
        return now

    def _size_limit(self, url: str) -> int:
        """The queue's maximum message size (asked once; SQS's default when it cannot be)."""
        limit = self._size_limits.get(url)
        if limit is None:
            try:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["MaximumMessageSize"]
                )
                limit = int(attrs["Attributes"]["MaximumMessageSize"])
            except (*AWS_EXCEPTIONS, KeyError, ValueError, TypeError):
                limit = DEFAULT_MAX_MESSAGE_SIZE
            self._size_limits[url] = limit
        return limit

    def _send_dead_letter(
        self, message: InMessage, copy: resend.Copy, record_id: str | None, kind: str
    ) -> None:
        request: dict[str, Any] = {
            "QueueUrl": self.dlq_url,
            "MessageBody": copy.body,
            "MessageAttributes": copy.attributes,
        }
        if self.fifo:
            group = message.group_id or record_id or message.message_id or "northmigrate"
            request["MessageGroupId"] = group[:128]
            # The same message dead-lettered twice (a delete that failed) is sent once.
            request["MessageDeduplicationId"] = hashlib.sha256(
                f"{message.message_id}\0{kind}".encode()
            ).hexdigest()
        self.sqs.send_message(**request)
