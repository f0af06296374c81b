r"""``--where`` filters: which dead letters a redrive moves.

An expression is ``FIELD OP VALUE``. Fields: ``reason`` (the dead-letter reason; ``unknown``
when there is none), ``kind`` (the failure kind), ``record_id``, ``message_id``, and
``record.<dotted path>`` (a field of the record; a list on the way is walked into, and the
condition holds when any element matches). Operators: ``=`` equals, ``!=`` differs, ``~``
matches the regular expression (searched anywhere in the text), ``!~`` does not match.
Values compare as text (JSON ``true``/``false``/``null`` for those values). A missing field
equals nothing: ``=`` and ``~`` fail, ``!=`` and ``!~`` hold. Several expressions must all
hold.

Regular expressions run on RE2, whose matching time grows linearly with the text: no pattern
can make a redrive hang, whatever the dead letters hold. Its syntax is Python's without
backreferences (``\1``, ``(?P=name)``) and lookaround (``(?=…)``, ``(?<!…)``); ``\z`` ends the
text where Python writes ``\Z``. A pattern RE2 refuses is an InputError (exit 2) with RE2's
reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

from northmigrate.dlq.letters import Letter
from northmigrate.errors import InputError

_EXPRESSION = re.compile(r"^\s*(?P<field>[A-Za-z_][\w.-]*)\s*(?P<op>!=|!~|=|~)(?P<value>.*)$", re.S)
_PLAIN_FIELDS = ("reason", "kind", "error_kind", "record_id", "message_id")
_MISSING = object()
_SURROGATES = re.compile("[\ud800-\udfff]")  # cannot be encoded as UTF-8, which RE2 reads


class Pattern(Protocol):
    def search(self, text: str) -> object: ...


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str
    pattern: Pattern | None = None

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"

    def holds(self, letter: Letter) -> bool:
        values = [_text(v) for v in _values(letter, self.field)]
        if self.op == "=":
            return self.value in values
        if self.op == "!=":
            return self.value not in values
        assert self.pattern is not None
        found = any(_search(self.pattern, v) for v in values)
        return found if self.op == "~" else not found


def parse_where(expression: str) -> Condition:
    """One ``--where`` expression; InputError (exit 2) when it is not one."""
    match = _EXPRESSION.match(expression)
    if match is None:
        raise InputError(
            f"--where {expression!r} is not FIELD=VALUE, FIELD!=VALUE, FIELD~REGEX or FIELD!~REGEX",
            hint='e.g. --where "reason~ValueError" --where "record.country=CA"',
        )
    field, op, value = match["field"], match["op"], match["value"].strip()
    if field not in _PLAIN_FIELDS and not (field.startswith("record.") and len(field) > 7):
        raise InputError(
            f"--where field {field!r} is unknown",
            hint="use reason, kind, error_kind, record_id, message_id or record.<field>",
        )
    pattern = None
    if op in ("~", "!~"):
        pattern = compile_pattern(value, expression)
    return Condition(field, op, value, pattern)


def compile_pattern(value: str, expression: str) -> Pattern:
    """``value`` as an RE2 pattern; InputError (exit 2) with RE2's reason when it refuses it."""
    options = re2.Options()
    options.log_errors = False  # the reason goes into the error, not onto stderr
    try:
        pattern: Pattern = re2.compile(_SURROGATES.sub("\ufffd", value), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "refused"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise InputError(
            f"--where {expression!r}: bad regular expression: {reason}",
            hint="RE2 syntax: Python's without backreferences and lookaround",
        ) from exc
    return pattern


def _search(pattern: Pattern, text: str) -> bool:
    try:
        return pattern.search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800"
        return pattern.search(_SURROGATES.sub("\ufffd", text)) is not None


def parse_all(expressions: Iterable[str]) -> list[Condition]:
    return [parse_where(e) for e in expressions]


def matches(letter: Letter, conditions: Sequence[Condition]) -> bool:
    return all(condition.holds(letter) for condition in conditions)


def _values(letter: Letter, field: str) -> list[Any]:
    if field == "reason":
        return [letter.reason]
    if field == "kind":
        return [letter.kind] if letter.kind is not None else []
    if field == "error_kind":
        return [letter.error_kind] if letter.error_kind is not None else []
    if field == "record_id":
        return [letter.record_id] if letter.record_id is not None else []
    if field == "message_id":
        return [letter.message.message_id]
    record = letter.record
    if record is None and isinstance(letter.data, dict):
        record = letter.data  # a bare record sent without an envelope
    found: list[Any] = []
    _walk(record, field.split(".")[1:], found)
    return found


def _walk(value: Any, path: list[str], found: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, path, found)
        return
    if not path:
        if value is not _MISSING:
            found.append(value)
        return
    if isinstance(value, dict) and path[0] in value:
        _walk(value[path[0]], path[1:], found)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
