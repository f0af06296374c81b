"""Check one source item against the migration: parse, validate, de-duplicate, size, eligibility.

``Validator.check`` turns a ``SourceItem`` into a ``Checked`` outcome: ``eligible`` (with
the message to send), ``ineligible``, ``duplicate`` or ``invalid`` (with a ``Rejection``).
Counting conventions (the JSON summary of validate and enqueue):
``read = valid + invalid + duplicates`` and ``valid = eligible + ineligible``; a duplicate is
a record whose key was already seen earlier in the same source (the first one wins), and a
record too large for the queue is invalid.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from northmigrate import records
from northmigrate.aws.sqs.message import attributes_size
from northmigrate.aws.sqs.queue import fifo_fields
from northmigrate.plugin import Migration
from northmigrate.records import envelope
from northmigrate.records.ids import RecordIds
from northmigrate.records.item import SourceItem
from northmigrate.redact import Scrubber, error_text, sensitive_leaves

Kind = Literal["eligible", "ineligible", "duplicate", "invalid"]
MAX_REPORTED_ERRORS = 100


@dataclass(slots=True)
class Rejection:
    """Why one item of the source was not sent; never holds a sensitive value."""

    line: int | None
    record_id: str | None
    field: str | None
    error: str
    origin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "line": self.line,
            "record_id": self.record_id,
            "field": self.field,
            "error": self.error,
        }
        if self.origin:
            out["origin"] = self.origin
        return out


@dataclass(slots=True)
class OutMessage:
    """One message ready for SendMessageBatch."""

    record_id: str
    line: int | None
    body: str
    attributes: dict[str, dict[str, str]]
    size: int
    group_id: str | None = None
    dedup_id: str | None = None


@dataclass(slots=True)
class Checked:
    kind: Kind
    item: SourceItem
    record_id: str | None = None
    rejection: Rejection | None = None
    message: OutMessage | None = None
    record: BaseModel | None = None  # the validated record (eligible and ineligible ones)


@dataclass
class Tally:
    read: int = 0
    valid: int = 0
    eligible: int = 0
    ineligible: int = 0
    invalid: int = 0
    duplicates: int = 0
    errors: list[Rejection] = field(default_factory=list)
    errors_total: int = 0

    def add(self, checked: Checked) -> None:
        self.read += 1
        kind = checked.kind
        if kind == "invalid":
            self.invalid += 1
        elif kind == "duplicate":
            self.duplicates += 1
        else:
            self.valid += 1
            if kind == "eligible":
                self.eligible += 1
            else:
                self.ineligible += 1
        if checked.rejection is not None:
            self.reject(checked.rejection)

    def reject(self, rejection: Rejection) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(rejection)


class KeySet:
    """The keys read so far, in 8 bytes each (a set of strings costs ten times that).

    Open addressing over an ``array`` of 64-bit key hashes. Two different keys share a hash
    with a probability of about n²/2⁶⁵ (3·10⁻⁸ for a million records); the later one would
    then be reported as a duplicate, visible in the rejections, never dropped silently.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._table = array("q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: str) -> bool:
        """Add ``key``; False when it was already there."""
        h = hash(key) or 1
        table, mask = self._table, self._mask
        index = h & mask
        while True:
            slot = table[index]
            if slot == 0:
                break
            if slot == h:
                return False
            index = (index + 1) & mask
        table[index] = h
        self._count += 1
        if self._count * 2 > mask:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._table
        capacity = (self._mask + 1) * 2
        self._table = table = array("q", bytes(8 * capacity))
        self._mask = mask = capacity - 1
        for h in old:
            if h:
                index = h & mask
                while table[index]:
                    index = (index + 1) & mask
                table[index] = h


# Characters SQS refuses in a message body (a JSON string may hold them: they are sent
# escaped, the same value).
_SQS_REFUSES = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escaped(text: str) -> str:
    return records.dumps(records.loads(text), ascii_only=True)


def describe_validation(exc: ValidationError, shown: int = 5) -> str:
    """``field: problem; …`` for the first ``shown`` problems, never with the values (they
    may be sensitive). Validate's rejections and the worker's dead-letter reasons use it."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{_loc(p['loc']) or 'record'}: {_message(p['msg'])}" for p in problems[:shown]]
    if len(problems) > shown:
        parts.append(f"and {len(problems) - shown} more")
    return "; ".join(parts)


def _message(msg: str) -> str:
    """A custom validator's message without pydantic's "Value error, " before it."""
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _loc(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(part) for part in loc) or None


class Validator:
    """Checks items one by one; keeps the set of keys seen for duplicate detection."""

    def __init__(
        self,
        migration: Migration[Any],
        *,
        max_message_size: int,
        run_id: str = "",
        source_name: str = "",
        fifo: bool = False,
        ids: RecordIds | None = None,
    ) -> None:
        self.migration = migration
        self.ids = ids or RecordIds.for_migration(migration)
        self.max_message_size = max_message_size
        self.source_name = source_name
        self.fifo = fifo
        enqueued_at = envelope.iso(envelope.utc_now())
        self._bodies = envelope.BodyWriter(migration.name, run_id, enqueued_at)
        self._seen = KeySet()
        self.largest_message = 0  # bytes, over every valid eligible record checked
        self._model: type[BaseModel] = migration.model

    def check(self, item: SourceItem) -> Checked:
        if item.error is not None:
            return self._invalid(item, None, None, item.error)
        try:
            # One text for every reader: the envelope carries it, the worker and reconcile
            # validate it with the same records.validate (numbers exact).
            text = item.text if item.text is not None else records.dumps(item.data)
            record = records.validate(self._model, text)
        except records.RecordSyntaxError as exc:
            record_id = None if item.text is not None else self._guess_id(item)
            return self._invalid(item, record_id, None, str(exc))
        except ValidationError as exc:
            return self._from_validation_error(item, exc)
        except RecursionError:
            return self._invalid(item, None, None, "record is nested too deeply")
        except Exception as exc:  # a model validator of the plugin raised something else
            reason = self._clean(
                f"model validation failed: {type(exc).__name__}: {error_text(exc)}", item
            )
            return self._invalid(item, self._guess_id(item), None, reason)
        record_id = self.ids.of_record(record)
        if not self._seen.add(record_id):
            return Checked(
                "duplicate",
                item,
                record_id,
                Rejection(
                    item.line,
                    record_id,
                    self.migration.key,
                    f"duplicate {self.migration.key}: already read earlier in this source",
                    item.origin,
                ),
            )
        try:
            eligible = self.migration.is_eligible(record)
        except Exception as exc:  # the plugin's predicate failed on this record
            reason = self._clean(
                f"eligibility check failed: {type(exc).__name__}: {error_text(exc)}", item, record
            )
            return self._invalid(item, record_id, None, reason)
        if not eligible:
            return Checked("ineligible", item, record_id, record=record)
        message = self._message(item, text, record_id)
        self.largest_message = max(self.largest_message, message.size)
        if message.size > self.max_message_size:
            return self._invalid(
                item,
                record_id,
                None,
                f"record is {message.size} bytes as a message; the queue accepts at most "
                f"{self.max_message_size}",
            )
        return Checked("eligible", item, record_id, message=message, record=record)

    def _message(self, item: SourceItem, text: str, record_id: str) -> OutMessage:
        raw = text if text.isascii() or not _SQS_REFUSES.search(text) else _escaped(text)
        body = self._bodies.body(record_id, item.origin or self.source_name, item.line, raw)
        attrs = envelope.attributes(self.migration.name, record_id)
        body_bytes = len(body) if body.isascii() else len(body.encode())
        size = body_bytes + attributes_size(attrs)
        message = OutMessage(record_id, item.line, body, attrs, size)
        if self.fifo:
            fields = fifo_fields(record_id, f"{self.migration.name}\0{record_id}\0{raw}")
            message.group_id = fields["MessageGroupId"]
            message.dedup_id = fields["MessageDeduplicationId"]
        return message

    def _from_validation_error(self, item: SourceItem, exc: ValidationError) -> Checked:
        problems = exc.errors(include_url=False, include_input=False, include_context=False)
        first = problems[0]
        record_id = self._guess_id(item)
        return self._invalid(
            item, record_id, _loc(first["loc"]), self._clean(describe_validation(exc), item)
        )

    def _guess_id(self, item: SourceItem) -> str | None:
        data = item.data
        if data is None and item.text is not None:
            try:
                data = records.loads(item.text)
            except records.RecordSyntaxError:
                return None
        if isinstance(data, dict):
            value = data.get(self.migration.key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return self.ids.of(value)[:200]
        return None

    def _clean(self, text: str, item: SourceItem, record: BaseModel | None = None) -> str:
        """Scrub any sensitive value of this item's record out of a message."""
        if not self.migration.sensitive:
            return text
        data = item.data
        if data is None and item.text is not None:
            try:
                data = records.loads(item.text)
            except records.RecordSyntaxError:
                return text
        scrubber = Scrubber.for_record(data, self.migration.sensitive)
        if record is not None:  # the typed values too (enum names, dates as the model has them)
            scrubber = scrubber.extended(sensitive_leaves(record, self.migration.sensitive))
        return scrubber.scrub(text)

    def _invalid(
        self, item: SourceItem, record_id: str | None, field_name: str | None, error: str
    ) -> Checked:
        return Checked(
            "invalid",
            item,
            record_id,
            Rejection(item.line, record_id, field_name, error, item.origin),
        )
