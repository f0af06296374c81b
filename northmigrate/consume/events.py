"""One structured event per record outcome, the same from the local worker and Lambda.

Each event is one JSON object on one line::

    {"event": "record", "migration": "onboarding-v2", "run_id": "20261127T010203Z-3f9a1c",
     "record_id": "APP-000017", "message_id": "…", "attempt": 2, "outcome": "retried",
     "failure_kind": "retry", "error_kind": "outage", "reason": "TargetUnavailable: …",
     "backoff_s": 4, "duration_ms": 12.5, "consumer": "worker"}

``outcome`` is ``migrated``, ``retried`` (``backoff_s``: when it is tried again),
``dead_lettered`` (``failure_kind``: ``permanent``, ``exhausted``, ``invalid`` or
``unreadable``) or ``released`` (received and handed back unstarted). ``error_kind`` is the
failure's kind (``record``, ``throttled`` or ``outage``: :mod:`northmigrate.failures`), None
when nothing failed; a ``throttled`` retry was not charged a try. ``reason`` is already
scrubbed of sensitive values (northmigrate.consume.processing). The Lambda handler adds
``request_id`` to each, and writes one ``{"event": "invocation", …}`` summary per
invocation. Fields are never removed within a version of northmigrate; new ones may be added.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from northmigrate.aws.sqs.message import InMessage
from northmigrate.consume.processing import KIND_RETRY, Outcome, Status

OUTCOMES = {
    Status.SUCCEEDED: "migrated",
    Status.RETRY: "retried",
    Status.REQUEUED: "retried",
    Status.DEAD_LETTERED: "dead_lettered",
}

Emit = Callable[[dict[str, Any]], None]


def record_event(
    outcome: Outcome, *, migration: str, consumer: str, **extra: Any
) -> dict[str, Any]:
    """The event of one processed message."""
    name = OUTCOMES[outcome.status]
    kind = outcome.kind if outcome.status is Status.DEAD_LETTERED else None
    if outcome.retried:
        kind = KIND_RETRY
    event: dict[str, Any] = {
        "event": "record",
        "migration": migration,
        "run_id": outcome.run_id,
        "record_id": outcome.record_id,
        "message_id": outcome.message.message_id,
        "attempt": outcome.attempt,
        "outcome": name,
        "failure_kind": kind,
        "error_kind": outcome.error_kind if name != "migrated" else None,
        "reason": outcome.reason if name != "migrated" else None,
        "backoff_s": outcome.delay_s if outcome.retried else None,
        "duration_ms": round(outcome.duration_s * 1000, 3),
        "consumer": consumer,
    }
    event.update(extra)
    return event


def released_event(message: InMessage, *, migration: str, consumer: str) -> dict[str, Any]:
    """The event of a message received and handed back unstarted."""
    return {
        "event": "record",
        "migration": migration,
        "run_id": None,
        "record_id": message.string_attribute("northmigrate.record_id"),
        "message_id": message.message_id,
        "attempt": None,
        "outcome": "released",
        "failure_kind": None,
        "error_kind": None,
        "reason": None,
        "backoff_s": None,
        "duration_ms": 0.0,
        "consumer": consumer,
    }


def fan_out(*consumers: Emit | None) -> Emit | None:
    """One consumer that hands each event to every given one (None when there is none)."""
    given = [c for c in consumers if c is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def emit(event: dict[str, Any]) -> None:
        for consumer in given:
            consumer(event)

    return emit


class JsonLines:
    """Writes events as JSON lines to a stream, one whole line at a time (thread-safe)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)
        stream = self._stream if self._stream is not None else sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
