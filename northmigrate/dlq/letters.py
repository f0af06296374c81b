"""One dead letter, read: its record id, reason and record, and its views for people.

The reason is the ``northmigrate.reason`` message attribute the worker sets on every message
it dead-letters; a message without it was moved by SQS itself (a worker died on its last
receive, or another consumer gave up on it): ``unknown``. The envelope's ``failures`` holds
the history of earlier failures.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from northmigrate import records
from northmigrate.aws.sqs.message import InMessage
from northmigrate.aws.sqs.reader import peek
from northmigrate.records import envelope
from northmigrate.redact import Scrubber, redact

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Letter:
    message: InMessage
    data: Any  # the body parsed as JSON, or None when it is not JSON
    is_envelope: bool
    record_id: str | None
    reason_or_none: str | None  # the worker's reason attribute
    kind: str | None
    error_kind: str | None = None  # record, throttled or outage (northmigrate.failures)

    @property
    def reason(self) -> str:
        return self.reason_or_none or envelope.UNKNOWN_REASON

    @property
    def record(self) -> dict[str, Any] | None:
        if self.is_envelope:
            record = self.data.get("record")
            return record if isinstance(record, dict) else None
        return None

    @property
    def origin(self) -> dict[str, Any] | None:
        """The dead letter's provenance (``northmigrate.origin``): message id, first message
        id, queue, first receive time; None for one SQS moved itself."""
        raw = self.message.string_attribute(envelope.ATTR_ORIGIN)
        if raw is None:
            return None
        try:
            found = json.loads(raw)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    @property
    def sent_at(self) -> float | None:
        """When SQS accepted the message into this queue (epoch seconds)."""
        return self.message.sent_at

    def scrubber(self, sensitive: Sequence[str]) -> Scrubber:
        """Masks this letter's sensitive values in any text (see northmigrate.redact)."""
        if not sensitive:
            return Scrubber.for_values(())
        return Scrubber.for_record(self.record or self.data, sensitive)


def hidden_note(in_flight: int, back_within: int | None) -> str | None:
    """The sentence that says dead letters were in flight and not seen, or None."""
    if in_flight <= 0:
        return None
    noun = "dead letter is" if in_flight == 1 else "dead letters are"
    return (
        f"{in_flight} {noun} in flight (hidden by another reader, or by a read that was "
        f"stopped) and could not be seen; they come back within {back_within} s: run again then"
    )


def record_reasons(sqs: SQSClient, url: str) -> dict[str, str | None]:
    """{record id: dead-letter reason or None} of every envelope in a queue, consuming nothing.

    The ``peek`` that ``reconcile`` takes.
    """
    found: dict[str, str | None] = {}
    for chunk in peek(sqs, url):
        for message in chunk:
            letter = read_letter(message)
            if letter.record_id is not None:
                found[letter.record_id] = letter.reason_or_none
    return found


def read_letter(message: InMessage) -> Letter:
    try:
        # Numbers exact, as everywhere; a number beyond the bounds a record is held to is
        # kept as written, so that the letter is still read, shown and masked.
        data: Any = records.loads(message.body, bounded=False)
    except records.RecordSyntaxError:
        data = None
    is_env = isinstance(data, dict) and data.get(envelope.MARKER) == envelope.ENVELOPE_VERSION
    record_id = None
    if is_env and isinstance(data.get("record_id"), str):
        record_id = data["record_id"]
    if record_id is None:
        record_id = message.string_attribute(envelope.ATTR_RECORD_ID)
    return Letter(
        message=message,
        data=data,
        is_envelope=is_env,
        record_id=record_id,
        reason_or_none=message.string_attribute(envelope.ATTR_REASON),
        kind=message.string_attribute(envelope.ATTR_FAILURE_KIND),
        error_kind=message.string_attribute(envelope.ATTR_ERROR_KIND),
    )


def shown_body(letter: Letter, sensitive: Sequence[str], show_pii: bool) -> Any:
    """The record (or the raw body) with sensitive fields masked unless ``show_pii``."""
    if letter.is_envelope:
        record = letter.record
        return record if show_pii else redact(record, sensitive)
    if letter.data is not None:
        return letter.data if show_pii else redact(letter.data, sensitive)
    return letter.message.body


def sample_view(letter: Letter, sensitive: Sequence[str], show_pii: bool) -> dict[str, Any]:
    """One entry of ``inspect``'s ``messages``."""
    scrubber = letter.scrubber(() if show_pii else sensitive)
    return {
        "message_id": letter.message.message_id,
        "record_id": letter.record_id,
        "receive_count": letter.message.receive_count,
        "reason": scrubber.scrub(letter.reason),
        "error_kind": letter.error_kind,
        "origin": letter.origin,
        "body": shown_body(letter, sensitive, show_pii),
    }


def export_view(letter: Letter, sensitive: Sequence[str], show_pii: bool) -> dict[str, Any]:
    """One line of ``inspect --export``: the whole message, sensitive fields masked."""
    scrubber = letter.scrubber(() if show_pii else sensitive)
    message = letter.message
    body: Any
    if letter.is_envelope:
        body = dict(letter.data)
        if not show_pii:
            body["record"] = redact(body.get("record"), sensitive)
            body = scrubber.scrub_tree(body)
    elif letter.data is not None:
        body = letter.data if show_pii else redact(letter.data, sensitive)
    else:
        body = message.body if show_pii else scrubber.scrub(message.body)
    attributes = {name: dict(value) for name, value in message.message_attributes.items() if value}
    if not show_pii:
        for value in attributes.values():
            if isinstance(value.get("StringValue"), str):
                value["StringValue"] = scrubber.scrub(value["StringValue"])
            if "BinaryValue" in value:
                value["BinaryValue"] = "***"
    for value in attributes.values():
        if isinstance(value.get("BinaryValue"), bytes):
            value["BinaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return {
        "message_id": message.message_id,
        "record_id": letter.record_id,
        "receive_count": message.receive_count,
        "reason": scrubber.scrub(letter.reason),
        "origin": letter.origin,
        "failure_kind": letter.kind,
        "error_kind": letter.error_kind,
        "attributes": dict(message.attributes),
        "message_attributes": attributes,
        "body": body,
    }
