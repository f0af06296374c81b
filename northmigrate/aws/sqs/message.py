"""A received SQS message, whichever shape it arrived in, and SQS's rules for attributes.

``normalise`` reads a message as ``ReceiveMessage`` returns it (``MessageId``,
``ReceiptHandle``, ``Body``, ``Attributes``, ``MessageAttributes``) or as a Lambda SQS event
record (``messageId``, ``receiptHandle``, ``body``, ``attributes``, ``messageAttributes``; a
binary attribute's ``binaryValue`` there is base64 text, decoded here to its bytes, so that a
copy holds the original bytes, not their base64 spelling).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_MESSAGE_ATTRIBUTES = 10  # SQS's limit per message


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
        """SQS's receive count, at least 1 (the attempt number on a FIFO queue)."""
        return max(1, self.receive_count)

    @property
    def first_received_at(self) -> datetime | None:
        """When SQS first handed this message out, if the receive asked for it."""
        raw = self.attributes.get("ApproximateFirstReceiveTimestamp")
        try:
            return datetime.fromtimestamp(int(raw) / 1000.0, UTC) if raw else None
        except (TypeError, ValueError, OverflowError, OSError):
            return None

    @property
    def sent_at(self) -> float | None:
        """When SQS accepted the message into this queue (epoch seconds)."""
        raw = self.attributes.get("SentTimestamp")
        try:
            return int(raw) / 1000.0 if raw is not None else None
        except ValueError:
            return None

    def string_attribute(self, name: str) -> str | None:
        value = self.message_attributes.get(name)
        text = value.get("StringValue") if value is not None else None
        return str(text) if text is not None else None


def _attribute(value: Mapping[str, Any], *, lambda_shape: bool) -> dict[str, Any] | None:
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


def attributes_size(attrs: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes SQS counts against the message size for these attributes: each name, data type
    and value (a binary value by its bytes)."""
    total = 0
    for name, value in attrs.items():
        total += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        if "StringValue" in value:
            total += len(str(value["StringValue"]).encode())
        binary = value.get("BinaryValue")
        if isinstance(binary, bytes | bytearray):
            total += len(binary)
        elif isinstance(binary, str):  # base64 text, as a Lambda event carries it
            total += len(base64.b64decode(binary, validate=False))
    return total


def message_size(body: str, attrs: Mapping[str, Mapping[str, Any]]) -> int:
    """The size SQS counts for a message: its body's bytes and its attributes."""
    return len(body.encode("utf-8", "surrogatepass")) + attributes_size(attrs)


# Characters SQS takes in a message body or an attribute's value: the rest is refused.
SQS_REFUSES = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_text(text: str) -> str:
    """``text`` with every character SQS refuses written as an escape (``\\x1b``,
    ``\\uffff``): a reason holding an ESC must not make the send fail."""
    if text.isascii() and text.isprintable():
        return text
    return SQS_REFUSES.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
