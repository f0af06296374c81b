"""Sending a message on: a retry's copy back to the main queue, or a dead letter to the DLQ.

Both keep the message as it was (its body's record untouched, its message attributes kept)
and add northmigrate's account of the try: an entry in the envelope's ``failures``, the
``attempts`` count, the record's ``origin``; a dead letter also gets the reason, the failure
kind and the provenance as message attributes, so that a body that is not an envelope keeps
them too.

**The size rule.** SQS counts the body and every message attribute (name, type and value)
against the queue's maximum message size. When the copy would exceed it, what northmigrate
added shrinks, in this order, until it fits: the older history entries go (the newest
failure stays), the reason is cut to ``SHORT_REASON`` characters, the whole history leaves
the body (the reason stays in the attributes), the message's other attributes go (largest
first; each one dropped is logged by name), and last the reason attribute is cut to the
error class. The body itself is never changed. ``provision`` gives the DLQ a larger size
limit than the main queue for this reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from northmigrate import records
from northmigrate.aws.clients import AWS_EXCEPTIONS, translate
from northmigrate.aws.sqs.message import (
    MAX_MESSAGE_ATTRIBUTES,
    InMessage,
    attributes_size,
    message_size,
    sqs_text,
)
from northmigrate.aws.sqs.queue import DEFAULT_MAX_MESSAGE_SIZE, fifo_fields, queue_name
from northmigrate.records import envelope

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.resend")

SHORT_REASON = 200


@dataclass(frozen=True)
class Copy:
    """A message ready for SendMessage, within the size limit when ``fits``."""

    body: str
    attributes: dict[str, dict[str, Any]]
    size: int
    fits: bool
    dropped: tuple[str, ...] = ()  # the message's own attributes left out to fit


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _with_entry(
    data: dict[str, Any],
    entry: dict[str, Any],
    *,
    keep: int,
    attempts: int | None,
    origin: dict[str, Any] | None,
) -> str:
    out = envelope.add_history(data, "failures", entry, keep=keep, attempts=attempts, origin=origin)
    return records.dumps(out)


def build(
    body: str,
    entry: dict[str, Any],
    *,
    kept: Mapping[str, dict[str, Any]],
    ours: Callable[[str], dict[str, dict[str, Any]]],
    limit: int,
    attempts: int | None = None,
    origin: dict[str, Any] | None = None,
    unchanged_last: bool = True,
) -> Copy:
    """The copy of ``body`` with ``entry`` added, fitted under ``limit`` bytes (the size rule).

    ``kept`` are the message's own attributes; ``ours(reason)`` northmigrate's attributes
    for a reason text (empty for a retry's copy). An unreadable body goes unchanged. With
    ``unchanged_last`` (a dead letter) the last resort is the body exactly as it came; a
    retry's copy must carry its ``attempts``, so it has no such resort (``fits`` is False).
    """
    data = envelope.load_body(body)
    reason = str(entry.get("reason", ""))
    error_class = str(entry.get("error_class", "")) or reason.split(":", 1)[0]
    short = _short(reason, SHORT_REASON)
    short_entry = dict(entry, reason=short)
    own = dict(kept)

    def attempt(text: str, reason_text: str, others: dict[str, dict[str, Any]]) -> Copy | None:
        attrs = _limit_count(others, ours(reason_text))
        size = message_size(text, attrs)
        return Copy(text, attrs, size, True, _missing(kept, attrs)) if size <= limit else None

    bodies: list[tuple[str, str]] = []  # (body, reason for the attributes), best first
    if data is None:
        bodies = [(body, reason), (body, short)]
    else:

        def rewritten(new: dict[str, Any], keep: int, *, with_origin: bool = True) -> str:
            chosen = origin if with_origin else None
            return _with_entry(data, new, keep=keep, attempts=attempts, origin=chosen)

        bodies = [
            (rewritten(entry, envelope.HISTORY_LIMIT), reason),
            (rewritten(entry, 1), reason),
            (rewritten(short_entry, 1), short),
            (rewritten(short_entry, 0), short),
            (rewritten(short_entry, 0, with_origin=False), short),
        ]
        if unchanged_last:  # the body as it came: the reason and origin in the attributes
            bodies.append((body, short))
    for text, why in bodies:
        found = attempt(text, why, own)
        if found is not None:
            return found
    text, why = bodies[-1]
    for name in sorted(own, key=lambda n: -attributes_size({n: own[n]})):
        if name == envelope.ATTR_RECORD_ID:
            continue
        own.pop(name)
        found = attempt(text, why, own)
        if found is not None:
            log.warning("message attribute %s left out of the copy to fit the size limit", name)
            return found
    found = attempt(text, error_class, own)
    if found is not None:
        return found
    attrs = _limit_count(own, ours(error_class))
    return Copy(text, attrs, message_size(text, attrs), False, _missing(kept, attrs))


def _limit_count(
    kept: Mapping[str, dict[str, Any]], ours: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The message's attributes and ours, at most SQS's ten: ours first, then northmigrate's
    own (the record id), then the others by name."""
    others = {k: v for k, v in kept.items() if k not in ours}
    room = MAX_MESSAGE_ATTRIBUTES - len(ours)
    if len(others) > room:
        names = sorted(others, key=lambda n: (not n.startswith("northmigrate."), n))[:room]
        others = {name: others[name] for name in names}
    return others | ours


def _missing(kept: Mapping[str, Any], attrs: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(name for name in kept if name not in attrs))


def dead_letter_attributes(
    kind: str, origin: dict[str, Any], error_kind: str = "record"
) -> Callable[[str], dict[str, dict[str, Any]]]:
    """``ours`` for a dead letter: the reason, the failure kind (and the error's kind:
    record, throttled or outage) and the provenance."""
    provenance = json.dumps(origin, separators=(",", ":"))  # ASCII: SQS takes every byte

    def ours(reason: str) -> dict[str, dict[str, Any]]:
        return {
            envelope.ATTR_REASON: {
                "DataType": "String",
                "StringValue": sqs_text(reason or kind),
            },
            envelope.ATTR_FAILURE_KIND: {"DataType": "String", "StringValue": kind},
            envelope.ATTR_ERROR_KIND: {"DataType": "String", "StringValue": error_kind},
            envelope.ATTR_ORIGIN: {"DataType": "String", "StringValue": provenance},
        }

    return ours


def no_attributes(reason: str) -> dict[str, dict[str, Any]]:
    """``ours`` for a retry's copy: the reason is in the body's history."""
    return {}


class Resender:
    """Sends messages on for the per-record path: a retry's delayed copy to the main queue,
    a dead letter to the DLQ, each fitted under its queue's size limit (asked once)."""

    def __init__(
        self, sqs: SQSClient, *, dlq_url: str, queue_url: str | None, fifo: bool = False
    ) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.queue_url = queue_url
        self.fifo = fifo
        self._size_limits: dict[str, int] = {}

    def requeue(
        self,
        message: InMessage,
        env: envelope.Envelope,
        entry: dict[str, Any],
        *,
        attempt: int,
        delay_s: int,
    ) -> bool:
        """Send the retry's copy (``attempts`` = ``attempt``, ``entry`` in its history,
        hidden for ``delay_s``); True once SQS confirmed it. False when it was not sent (the
        retry then stays in place): SQS refused it, or it could not carry its count."""
        assert self.queue_url is not None
        copy = build(
            message.body,
            entry,
            kept=message.message_attributes,
            ours=no_attributes,
            limit=self.size_limit(self.queue_url),
            attempts=attempt,
            origin=self.origin(message, env),
            unchanged_last=False,
        )
        if not copy.fits:  # within a few bytes of the limit: it cannot carry its count
            log.warning(
                "record %s is too large to carry its attempt count in a copy; it is tried "
                "again in place",
                env.record_id,
            )
            return False
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MessageBody": copy.body,
            "MessageAttributes": copy.attributes,
            "DelaySeconds": delay_s,
        }
        why = self._send(request, "SendMessage of a retry to the main queue")
        if why is not None:
            log.warning(
                "could not send the retry of message %s (%s); it is tried again in place",
                message.message_id,
                why,
            )
        return why is None

    def dead_letter(
        self,
        message: InMessage,
        env: envelope.Envelope | None,
        entry: dict[str, Any],
        *,
        record_id: str | None,
        kind: str,
        error_kind: str = "record",
    ) -> str | None:
        """Send the dead letter (the body kept, ``entry`` in its history, the reason, kind
        and provenance as attributes); None once SQS confirmed it, else why it was not."""
        origin = self.origin(message, env)
        provenance = dict(origin, message_id=message.message_id)
        if origin.get("message_id") != message.message_id:
            provenance["first_message_id"] = origin.get("message_id")
        copy = build(
            message.body,
            entry,
            kept=message.message_attributes,
            ours=dead_letter_attributes(kind, provenance, error_kind),
            limit=self.size_limit(self.dlq_url),
            attempts=0,  # a record brought back from the DLQ gets a whole set of tries
            origin=origin,
        )
        request: dict[str, Any] = {
            "QueueUrl": self.dlq_url,
            "MessageBody": copy.body,
            "MessageAttributes": copy.attributes,
        }
        if self.fifo:
            group = message.group_id or record_id or message.message_id
            # The same message dead-lettered twice (a delete that failed) is sent once.
            request |= fifo_fields(group or "", f"{message.message_id}\0{kind}")
        why = self._send(request, "SendMessage to the DLQ")
        if why is not None:
            log.warning(
                "could not dead-letter message %s (%s): %s; it stays on the queue",
                message.message_id,
                entry.get("reason"),
                why,
            )
        return why

    def _send(self, request: dict[str, Any], what: str) -> str | None:
        """One SendMessage (botocore retries it); None once SQS confirmed it, else why not."""
        try:
            self.sqs.send_message(**request)
        except AWS_EXCEPTIONS as exc:
            return translate(exc, what).message
        return None

    def origin(self, message: InMessage, env: envelope.Envelope | None) -> dict[str, Any]:
        """The record's first message: the envelope's ``origin``, else the provenance
        attribute of an earlier dead-lettering (a body that is not an envelope, redriven),
        else this message."""
        if env is not None and env.origin:
            return env.origin
        earlier = message.string_attribute(envelope.ATTR_ORIGIN)
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
        queue = queue_name(self.queue_url or "")
        first_at = message.first_received_at
        at = envelope.iso(first_at) if first_at else None
        return envelope.origin(message.message_id, queue, at)

    def size_limit(self, url: str) -> int:
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
