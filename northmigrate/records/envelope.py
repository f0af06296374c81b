"""The message envelope: what every northmigrate message carries, versioned.

Body (JSON object), version 1::

    {"northmigrate": 1,                 # envelope version
     "migration": "onboarding-v2",      # Migration.name of the producer
     "record_id": "APP-000017",         # value of Migration.key
     "run_id": "20261127T010203Z-3f9a1c",
     "source": "records.jsonl", "line": 17,
     "enqueued_at": "2026-11-27T01:02:03Z",
     "record": {...},                   # the record (see "The record" below)
     "attempts": 2,                     # tries that failed and were retried (absent: 0)
     "origin": {...},                   # the record's first message (see "Provenance")
     "failures": [...],                 # newest last: why it was retried or dead-lettered
     "redrives": [...]}                 # newest last: when it was moved back (dlq redrive)

**The record.** The ``record`` object is the record as ``validate`` read it: for a JSONL
source the line's own text, verbatim; for a ``.json`` array the element's own text; for a
CSV row or a DynamoDB item the values written by :func:`northmigrate.records.codec.dumps`, every
number digit for digit. Every reader parses it with :func:`northmigrate.records.codec.loads`
(:func:`parse` here): a number with a fraction or an exponent is a ``Decimal`` of exactly its
digits, never a binary float, so the model the handler gets is equal, to the last digit, to
the one ``validate`` accepted. What is canonical is the values, not the bytes: a body
rewritten to add history (:func:`with_history`) may spell a number differently
(``0.0000001`` as ``1E-7``) but never changes one.

**Attempts.** ``attempts`` counts the tries of the plugin's handler that failed with an
error worth retrying. On a standard queue a retry is a new copy of the message with
``attempts`` one higher, sent with a delay (the backoff) before the old one is deleted; so
an attempt is counted only when the handler really ran, never for a receive that tried
nothing (a peek, a hand-back, a killed worker). See docs/guarantees.md.

**Provenance.** ``origin`` names the record's first message: ``message_id``, ``queue`` (its
name) and ``first_received_at`` (when it was first received); set when the record is first
retried or dead-lettered, and kept through retries and redrives.

The record id is also a message attribute (``northmigrate.record_id``), so that tools can
filter without parsing bodies. A consumer must accept unknown keys (a newer minor
change adds keys; an incompatible change bumps the version).
"""

from __future__ import annotations

import json
import json.encoder
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from northmigrate import records
from northmigrate.aws.sqs.message import sqs_text

ENVELOPE_VERSION = 1
MARKER = "northmigrate"
ATTR_RECORD_ID = "northmigrate.record_id"
# Set on every message the worker dead-letters itself (the body of an unreadable message
# cannot carry it); the envelope's ``failures`` has the full history.
ATTR_REASON = "northmigrate.reason"
ATTR_FAILURE_KIND = "northmigrate.failure_kind"
ATTR_ERROR_KIND = "northmigrate.error_kind"  # record, throttled or outage (northmigrate.failures)
# The dead letter's provenance, as compact JSON: {"message_id", "queue", "first_received_at"}.
ATTR_ORIGIN = "northmigrate.origin"
HISTORY_LIMIT = 20


class EnvelopeError(ValueError):
    """A message body that is not a northmigrate envelope this version can read."""


def utc_now() -> datetime:
    """The clock seam: every timestamp northmigrate writes comes from here."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Envelope:
    migration: str
    record_id: str
    record: dict[str, Any]
    run_id: str = ""
    source: str = ""
    line: int | None = None
    enqueued_at: str = ""
    attempts: int = 0
    origin: dict[str, Any] | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    redrives: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_failure(self) -> dict[str, Any] | None:
        return self.failures[-1] if self.failures else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            MARKER: ENVELOPE_VERSION,
            "migration": self.migration,
            "record_id": self.record_id,
            "run_id": self.run_id,
            "source": self.source,
            "line": self.line,
            "enqueued_at": self.enqueued_at,
            "record": self.record,
        }
        if self.attempts:
            out["attempts"] = self.attempts
        if self.origin:
            out["origin"] = self.origin
        if self.failures:
            out["failures"] = self.failures[-HISTORY_LIMIT:]
        if self.redrives:
            out["redrives"] = self.redrives[-HISTORY_LIMIT:]
        return out

    def to_body(self) -> str:
        return records.dumps(self.to_dict())


class BodyWriter:
    """Builds the envelope bodies of one enqueue run, as fast as the hot path needs.

    The same bytes as ``Envelope.to_body`` for a fresh envelope, around a record that is
    already JSON text (no parse and dump per record): the keys that do not change within a
    run (version, migration, run id, enqueue time) are encoded once, the source name once
    per distinct name, and only the record id and line are encoded per record.
    """

    def __init__(self, migration: str, run_id: str, enqueued_at: str) -> None:
        self._head = f'{{"{MARKER}":{ENVELOPE_VERSION},"migration":{_string(migration)}'
        self._run = f',"run_id":{_string(run_id)}'
        self._tail = f',"enqueued_at":{_string(enqueued_at)},"record":'
        self._source: tuple[str, str] = ("", _string(""))

    def body(self, record_id: str, source: str, line: int | None, raw_record: str) -> str:
        if source != self._source[0]:
            self._source = (source, _string(source))
        return (
            f'{self._head},"record_id":{_string(record_id)}{self._run}'
            f',"source":{self._source[1]},"line":{"null" if line is None else int(line)}'
            f"{self._tail}{raw_record}}}"
        )


_string = json.encoder.encode_basestring  # json.dumps of a str, ensure_ascii=False (C)


FailureKind = str  # "permanent" | "exhausted" | "invalid" | "unreadable" | "retry"
UNKNOWN_REASON = "unknown"  # a dead letter SQS moved itself (no outcome was ever recorded)


def failure(
    *,
    kind: FailureKind,
    error_class: str,
    reason: str,
    attempt: int,
    migration: str,
    version: str,
    at: datetime | None = None,
    message_id: str | None = None,
    error_kind: str | None = None,
) -> dict[str, Any]:
    """One entry of ``Envelope.failures``: why a try failed.

    ``kind``: ``retry`` (tried again later), ``permanent`` (PermanentError), ``exhausted``
    (retries used up), ``invalid`` (the record no longer validates), ``unreadable`` (not an
    envelope of this migration). ``reason`` is ``"<ErrorClass>: <message>"`` with sensitive
    values already scrubbed; ``message_id`` the message the try was made on; ``error_kind``
    the failure's kind (``record``, ``throttled``, ``outage``: :mod:`northmigrate.failures`).
    """
    entry: dict[str, Any] = {
        "kind": kind,
        "error_class": error_class,
        "reason": reason,
        "attempt": attempt,
        "migration": migration,
        "version": version,
        "at": iso(at or utc_now()),
    }
    if message_id:
        entry["message_id"] = message_id
    if error_kind:
        entry["error_kind"] = error_kind
    return entry


def redrive_entry(
    *, source: str, destination: str, at: datetime | None = None, run: str | None = None
) -> dict[str, Any]:
    """One entry of ``Envelope.redrives``: when and where a dead letter was moved back, and
    by which redrive run (a canary knows its own letters when they come back)."""
    entry = {"from": source, "to": destination, "at": iso(at or utc_now())}
    if run is not None:
        entry["run"] = run
    return entry


def origin(message_id: str, queue: str, first_received_at: str | None) -> dict[str, Any]:
    """The provenance of a record's first message (``Envelope.origin``)."""
    return {"message_id": message_id, "queue": queue, "first_received_at": first_received_at}


def attributes(migration: str, record_id: str) -> dict[str, dict[str, str]]:
    """The record id as a message attribute (the migration and version are in the body).

    One attribute, not three: botocore validates and serializes each one, and SQS answers
    with its digest; together about 9 µs of client CPU per message and attribute, a
    measurable share of an enqueue's (see bench/enqueue.py).
    """
    return {ATTR_RECORD_ID: {"DataType": "String", "StringValue": sqs_text(record_id)}}


def load_body(body: str) -> dict[str, Any] | None:
    """The body as an envelope of this version, numbers exact; None when it is not one."""
    try:
        data = records.loads(body)
    except records.RecordSyntaxError:
        return None
    if not isinstance(data, dict) or data.get(MARKER) != ENVELOPE_VERSION:
        return None
    return data


def with_history(
    body: str,
    key: str,
    entry: dict[str, Any],
    *,
    attempts: int | None = None,
    origin: dict[str, Any] | None = None,
) -> str:
    """The envelope with ``entry`` appended to its ``key`` history (``failures`` or
    ``redrives``, the newest ``HISTORY_LIMIT`` kept), and ``attempts`` and a missing
    ``origin`` set when given; any other body unchanged.

    Works on the JSON itself, not on an ``Envelope``, so that keys this version does not
    know (a newer producer's) travel on untouched; every number keeps its exact value.
    """
    data = load_body(body)
    if data is None:
        return body
    return records.dumps(add_history(data, key, entry, attempts=attempts, origin=origin))


def add_history(
    data: dict[str, Any],
    key: str,
    entry: dict[str, Any] | None,
    *,
    keep: int = HISTORY_LIMIT,
    attempts: int | None = None,
    origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of envelope ``data`` with ``entry`` appended to its ``key`` history, at most
    ``keep`` entries kept in each history (0: the histories leave the body; a redrive
    history is cut to the same length), and ``attempts`` and a missing ``origin`` set."""
    out = dict(data)
    keep = min(keep, HISTORY_LIMIT)
    for name in ("failures", "redrives"):
        history = out.get(name)
        kept = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
        if name == key and entry is not None:
            kept.append(entry)
        if keep and kept:
            out[name] = kept[-keep:]
        else:
            out.pop(name, None)
    if attempts is not None:
        out["attempts"] = attempts
    if origin is not None and not isinstance(out.get("origin"), dict):
        out["origin"] = origin
    return out


def parse(body: str) -> Envelope:
    """Read an envelope; raises EnvelopeError with a reason fit for a dead letter."""
    try:
        data = records.loads(body)
    except records.RecordSyntaxError as exc:
        why = "message body is not JSON" if str(exc).startswith("invalid JSON") else str(exc)
        raise EnvelopeError(why) from exc
    if not isinstance(data, dict) or MARKER not in data:
        raise EnvelopeError("message body is not a northmigrate envelope")
    version = data[MARKER]
    if version != ENVELOPE_VERSION:
        raise EnvelopeError(f"unsupported envelope version {version!r}")
    record = data.get("record")
    migration = data.get("migration")
    record_id = data.get("record_id")
    if not isinstance(record, dict):
        raise EnvelopeError("envelope has no record object")
    if not isinstance(migration, str) or not isinstance(record_id, str):
        raise EnvelopeError("envelope lacks migration or record_id")
    line = data.get("line")
    attempts = data.get("attempts")
    found_origin = data.get("origin")
    failures = data.get("failures") or []
    redrives = data.get("redrives") or []
    return Envelope(
        migration=migration,
        record_id=record_id,
        record=record,
        run_id=str(data.get("run_id") or ""),
        source=str(data.get("source") or ""),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        enqueued_at=str(data.get("enqueued_at") or ""),
        attempts=attempts
        if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts > 0
        else 0,
        origin=found_origin if isinstance(found_origin, dict) else None,
        failures=[f for f in failures if isinstance(f, dict)] if isinstance(failures, list) else [],
        redrives=[r for r in redrives if isinstance(r, dict)] if isinstance(redrives, list) else [],
    )
