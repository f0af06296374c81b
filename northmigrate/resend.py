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
from typing import Any

from northmigrate import envelope, records

log = logging.getLogger("northmigrate.resend")

SQS_MAX_MESSAGE_ATTRIBUTES = 10
SHORT_REASON = 200


@dataclass(frozen=True)
class Copy:
    """A message ready for SendMessage, within the size limit when ``fits``."""

    body: str
    attributes: dict[str, dict[str, Any]]
    size: int
    fits: bool
    dropped: tuple[str, ...] = ()  # the message's own attributes left out to fit


def message_size(body: str, attributes: Mapping[str, dict[str, Any]]) -> int:
    return len(body.encode("utf-8", "surrogatepass")) + envelope.attributes_size(dict(attributes))


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
    out = dict(data)
    if keep:
        history = data.get("failures")
        history = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
        out["failures"] = [*history, entry][-min(keep, envelope.HISTORY_LIMIT) :]
        if keep == 1 and isinstance(out.get("redrives"), list):
            out["redrives"] = out["redrives"][-1:]
    else:
        out.pop("failures", None)
        out.pop("redrives", None)
    if attempts is not None:
        out["attempts"] = attempts
    if origin is not None and not isinstance(out.get("origin"), dict):
        out["origin"] = origin
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
    for name in sorted(own, key=lambda n: -envelope.attributes_size({n: own[n]})):
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
    room = SQS_MAX_MESSAGE_ATTRIBUTES - len(ours)
    if len(others) > room:
        names = sorted(others, key=lambda n: (not n.startswith("northmigrate."), n))[:room]
        others = {name: others[name] for name in names}
    return others | ours


def _missing(kept: Mapping[str, Any], attrs: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(name for name in kept if name not in attrs))


def dead_letter_attributes(
    kind: str, origin: dict[str, Any]
) -> Callable[[str], dict[str, dict[str, Any]]]:
    """``ours`` for a dead letter: the reason, the failure kind and the provenance."""
    provenance = json.dumps(origin, separators=(",", ":"))  # ASCII: SQS takes every byte

    def ours(reason: str) -> dict[str, dict[str, Any]]:
        return {
            envelope.ATTR_REASON: {
                "DataType": "String",
                "StringValue": envelope.sqs_text(reason or kind),
            },
            envelope.ATTR_FAILURE_KIND: {"DataType": "String", "StringValue": kind},
            envelope.ATTR_ORIGIN: {"DataType": "String", "StringValue": provenance},
        }

    return ours


def no_attributes(reason: str) -> dict[str, dict[str, Any]]:
    """``ours`` for a retry's copy: the reason is in the body's history."""
    return {}
