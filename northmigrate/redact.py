"""Keep sensitive fields out of sight.

Paths are dotted field names; a list on the way is walked into, so ``owners.tax_id`` names
the tax id of every owner. ``redact`` masks those fields in a record. A ``Scrubber`` masks
their values wherever they appear inside free text: every text that leaves the process and
came from an exception or a validation error goes through ``Scrubber.scrub`` (or
``Scrubber.describe``, which renders the exception first) with the values of its record.

What a scrubber masks
    A value is masked in every form a text may give it, not only ``str(value)``:

    * each *rendering* of the value: its ``str``, and a string stripped of surrounding
      whitespace; for dates, datetimes and times the ISO forms (``1980-02-03``,
      ``1980-02-03T04:05:00+00:00``, ``1980-02-03 04:05:00``), the ISO form without the
      offset (so ``…Z`` and ``…+00:00`` both lose the date and time), the ``repr`` without
      its module (``date(1980, 2, 3)``) and, since a timezone's repr differs between
      pydantic and the standard library, the repr up to the timezone
      (``datetime(1980, 2, 3, 4, 5``); a datetime's date on its own; a ``Decimal``'s
      ``str`` (its repr ``Decimal('12.30')`` holds it), fixed-point and normalised forms; a
      float's ``repr``, ``Decimal``, fixed-point and pydantic JSON spellings (``1e-05``,
      ``1E-5``, ``0.00001``, ``1e-5``); a UUID in lower and upper case, with and without
      hyphens; an enum member's value and, when the scrubber has the member itself, its
      name and ``Class.NAME``; bytes as ``repr`` writes them and as UTF-8 text;
    * each rendering *escaped* as ``repr`` (single- or double-quoted), ``ascii`` and
      ``json.dumps`` (``ensure_ascii`` true and false) write a string's body, and the same
      escapes applied twice (the repr of a message that holds a repr);
    * a string from a JSON record stands for the typed value pydantic makes of it: an ISO
      date, datetime or time string also masks that value's reprs, a number string its
      ``Decimal`` forms, a UUID string its canonical forms. So the worker's JSON record is
      enough to scrub a handler's ``f"{record!r}"``, except an enum member's name, which
      only the model knows: where there is a model, scrub with its values too
      (``Scrubber.for_record(model, paths)`` or ``extended``).

    Matching is exact: a value a handler has changed (upper-cased, sliced, reformatted
    with ``strftime``) is not recognised, except as a truncated fragment (below).

Short values
    A rendering of 3 characters or more is masked wherever it occurs, inside words too.
    One of 2 characters is masked only where it stands as a whole token: not glued to a
    letter, digit or ``_`` on a side where it starts or ends with one (``'QZ'``, ``QZ,``,
    ``=42`` are masked; ``QZX``, ``420`` are not). One of 1 character is masked only where
    it is rendered as a value: quoted (``'F'``, ``"F"``, ``\\'F\\'``, ``\\"F\\"``) or
    right after ``=``, ``= ``, ``:`` or ``: `` and not followed by a letter, digit or ``_``
    (``sex='F'``, ``children=7``, ``"children": 7``). A bare ``7`` or ``F`` in prose stays:
    masking every ``1`` would wreck line numbers, list indexes and counts, and one
    character says little on its own. Booleans and ``None`` are never masked in text
    (``redact`` still masks the field itself), nor are renderings that are empty, only
    whitespace or only ``*``.

Truncated values
    pydantic-core writes an ``input_value`` whose repr is over 50 bytes as its first 25
    bytes, ``...`` and its last 24 bytes (cut on character boundaries): for a long string
    about 24 and 23 characters of it, neither being the whole value; when the input is a
    whole record, the cuts fall anywhere inside its values. Other code truncates with
    ``…``. So a *fragment* is masked too: a piece of ``MIN_FRAGMENT`` (3) characters or more
    that is the start of a form (a rendering, or an escape of one) and ends right before
    ``...`` or ``…``, or that is the end of a form and starts right after one. At most 2
    characters of a value's start or end can remain beside an ellipsis; 3 matches the
    shortest value masked anywhere, and a fragment is only looked for beside an ellipsis,
    which keeps ordinary text safe from it.

Overlaps
    Every occurrence of every form is found, overlapping ones included; the spans are
    merged, and each merged span becomes one ``***``. Nothing of two overlapping values
    survives, whichever is longer, and touching values give one ``***``. Scrubbing runs
    again on its own output (at most 4 passes, in practice 2) in case a mask completes a
    value that holds ``*``; ``scrub`` is idempotent.

Cost
    ``Scrubber.for_values`` only keeps the values; the forms are built on the first
    ``scrub``, so a scrubber can be made for every record and costs little more than the
    walk over its values for records that do not fail. Scrubbing is a plain ``str.find``
    loop over the forms and, only when the text holds an ellipsis, a look no longer than
    each form on either side of each ellipsis: no regular expression, linear in the text
    for one record's forms. Measured with ten values (names, a date, tax ids, emails,
    phones, a Decimal) on a shared 2-core machine: making the scrubber 12-17 µs, building
    its forms 55-85 µs more (on the first scrub); scrubbing a 200-character reason 3 µs
    when it holds no value, 8-12 µs when it holds six, 27-45 µs for a truncated validation
    error, 55-75 µs for 2 KB holding 66. A text with no value in it is returned as the
    very same object.

Validation errors
    ``validation_text`` renders a ``pydantic.ValidationError`` as ``loc: msg [type=…]``
    without input values; a custom validator's message (``Value error, <text>``) may quote
    the value itself, so its output still goes through the scrubber (``describe`` does
    both). ``strip_input_values`` removes pydantic's ``input_value=…`` from any text that
    embeds a validation error's message; ``error_text`` renders any exception with both.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

MASK = "***"
MIN_FRAGMENT = 3  # the shortest piece of a truncated value that is masked beside an ellipsis
ELLIPSES = ("...", "…")
_LONG = 3  # renderings this long are masked anywhere; shorter ones only as tokens or values
_MAX_IMPLIED = 64  # strings longer than this are not parsed as dates, numbers or UUIDs
_MAX_FIXED = 64  # a Decimal's fixed-point form is added only up to this length
_PASSES = 4  # scrubbing repeats on its own output at most this often


# -- the fields ----------------------------------------------------------------------------


def redact(value: Any, paths: Iterable[str]) -> Any:
    """A copy of ``value`` with every field named by ``paths`` replaced by ``***``."""
    tree = _tree(paths)
    return _redact(value, tree) if tree else value


def _tree(paths: Iterable[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if child is None:  # a parent is already masked whole
                break
            node = child
        else:
            node[parts[-1]] = None
    return tree


def _redact(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_redact(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in tree:
            out[key] = item
        elif tree[key] is None:
            out[key] = MASK
        else:
            out[key] = _redact(item, tree[key])
    return out


def sensitive_leaves(value: Any, paths: Iterable[str]) -> list[object]:
    """Every value of a field named by ``paths``, typed, from a JSON-like record (dicts and
    lists) or a pydantic model (fields by name or alias, extras too). A named field that
    holds a dict, a list or a model gives all the leaves inside it. ``None`` is left out."""
    found: list[object] = []
    _collect(value, _tree(paths), found)
    return found


def sensitive_values(value: Any, paths: Iterable[str]) -> set[str]:
    """The text of every sensitive leaf in ``value``, booleans left out (for ``scrub``).

    Kept for callers that hold a set of strings; ``sensitive_leaves`` keeps the types."""
    return {_plain(leaf) for leaf in sensitive_leaves(value, paths) if not isinstance(leaf, bool)}


def _plain(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def _collect(value: Any, tree: dict[str, Any] | None, found: list[object]) -> None:
    if tree is None:
        found.extend(_leaves(value))
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, tree, found)
    elif isinstance(value, Mapping | BaseModel):
        for key, subtree in tree.items():
            present, child = _field(value, key)
            if present:
                _collect(child, subtree, found)


def _field(value: Mapping[Any, Any] | BaseModel, name: str) -> tuple[bool, Any]:
    if isinstance(value, Mapping):
        return (True, value[name]) if name in value else (False, None)
    fields = type(value).model_fields
    if name in fields:
        return True, getattr(value, name)
    for attribute, info in fields.items():
        if name in (info.alias, info.validation_alias, info.serialization_alias):
            return True, getattr(value, attribute)
    extra = value.model_extra or {}
    return (True, extra[name]) if name in extra else (False, None)


def _leaves(value: Any) -> Iterator[object]:
    if value is None:
        return
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _leaves(getattr(value, name))
        for item in (value.model_extra or {}).values():
            yield from _leaves(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


# -- the scrubber --------------------------------------------------------------------------


def scrub(text: str, values: Iterable[object]) -> str:
    """``text`` with every form of each value masked (see the module docstring).

    Builds a scrubber for one text; a caller with several texts for one record should keep a
    ``Scrubber``."""
    return Scrubber.for_values(values).scrub(text)


class Scrubber:
    """Masks the values of one record in texts: build once per record, scrub many texts."""

    __slots__ = ("_plan", "_values")

    def __init__(self, values: tuple[object, ...]) -> None:
        self._values = values
        self._plan: _Plan | None = None

    @classmethod
    def for_values(cls, values: Iterable[object]) -> Scrubber:
        """A scrubber for ``values``: strings, numbers, dates, UUIDs, enums, bytes; dicts,
        lists and models are walked into. Cheap: the forms are built on the first scrub."""
        if isinstance(values, str | bytes | bytearray):  # one value, not its characters
            values = [values]
        return cls(tuple(leaf for leaf in _leaves(list(values)) if not isinstance(leaf, bool)))

    @classmethod
    def for_record(cls, record: Any, paths: Iterable[str]) -> Scrubber:
        """A scrubber for the sensitive fields of a JSON record or a pydantic model."""
        return cls.for_values(sensitive_leaves(record, paths))

    def extended(self, values: Iterable[object]) -> Scrubber:
        """A scrubber for this one's values and ``values`` (say, the typed model's after the
        JSON record's)."""
        return Scrubber.for_values([*self._values, *values])

    def __bool__(self) -> bool:
        return bool(self._values)

    def scrub(self, text: str) -> str:
        """``text`` with every form of every value masked; ``text`` itself when none is in
        it."""
        if not self._values or not text:
            return text
        if self._plan is None:
            self._plan = _Plan.build(self._values)
        for _ in range(_PASSES):
            spans = self._plan.spans(text)
            if not spans:
                break
            masked = _mask(text, spans)
            if masked == text:
                break
            text = masked
        return text

    def describe(self, exc: BaseException) -> str:
        """``error_text(exc)``, scrubbed: how an exception is told to people."""
        return self.scrub(error_text(exc))

    def scrub_tree(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string in it scrubbed (keys are kept)."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_tree(item) for item in value]
        if isinstance(value, dict):
            return {key: self.scrub_tree(item) for key, item in value.items()}
        return value


@dataclass(frozen=True, slots=True)
class _Form:
    """One spelling to look for. ``start``/``end`` is the part of it that is masked;
    ``glued_start``/``glued_end``: refuse a match glued to a word character on that side."""

    text: str
    start: int
    end: int
    glued_start: bool = False
    glued_end: bool = False

    @property
    def rank(self) -> tuple[int, int, int]:
        """Of two forms with one text, the one that masks more, with fewer conditions."""
        return (self.end - self.start, -(self.glued_start + self.glued_end), -self.start)


@dataclass(frozen=True, slots=True)
class _Plan:
    forms: tuple[_Form, ...]
    fragments: tuple[str, ...]  # forms whose heads and tails are masked beside an ellipsis

    @classmethod
    def build(cls, values: Iterable[object]) -> _Plan:
        forms: dict[str, _Form] = {}
        fragments: set[str] = set()
        for rendering in {r for value in values for r in _renderings(value)}:
            if not rendering.strip() or not rendering.strip("*"):
                continue
            for spelled in _escapes(rendering):
                for form in _forms(spelled, len(rendering)):
                    known = forms.get(form.text)
                    if known is None or form.rank > known.rank:
                        forms[form.text] = form
                if len(rendering) >= _LONG and len(spelled) > MIN_FRAGMENT:
                    fragments.add(spelled)
        ordered = sorted(forms.values(), key=lambda f: (-len(f.text), f.text))
        return cls(tuple(ordered), tuple(sorted(fragments, key=lambda f: (-len(f), f))))

    def spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for form in self.forms:
            at = text.find(form.text)
            while at >= 0:
                end = at + len(form.text)
                if not (
                    (form.glued_start and at > 0 and _word(text[at - 1]))
                    or (form.glued_end and end < len(text) and _word(text[end]))
                ):
                    spans.append((at + form.start, at + form.end))
                at = text.find(form.text, at + 1)
        if self.fragments:
            for ellipsis in ELLIPSES:
                at = text.find(ellipsis)
                while at >= 0:
                    for fragment in self.fragments:
                        _head(text, at, fragment, spans)
                        _tail(text, at + len(ellipsis), fragment, spans)
                    at = text.find(ellipsis, at + 1)
        return spans


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _forms(spelled: str, length: int) -> Iterator[_Form]:
    """How one spelling of a rendering ``length`` characters long is looked for."""
    size = len(spelled)
    if length >= _LONG:
        yield _Form(spelled, 0, size)
    elif length == 2:
        yield _Form(spelled, 0, size, _word(spelled[0]), _word(spelled[-1]))
    else:
        for quote in ("'", '"', "\\'", '\\"'):
            yield _Form(f"{quote}{spelled}{quote}", len(quote), len(quote) + size)
        for before in ("=", "= ", ":", ": "):
            yield _Form(f"{before}{spelled}", len(before), len(before) + size, False, True)


def _head(text: str, ellipsis: int, form: str, spans: list[tuple[int, int]]) -> None:
    """Mask the longest start of ``form`` (``MIN_FRAGMENT`` or more) that ends at
    ``ellipsis``."""
    key = form[:MIN_FRAGMENT]
    at = text.find(key, max(0, ellipsis - len(form)), ellipsis)
    while at >= 0:
        if form.startswith(text[at:ellipsis]):
            spans.append((at, ellipsis))
            return
        at = text.find(key, at + 1, ellipsis)


def _tail(text: str, after: int, form: str, spans: list[tuple[int, int]]) -> None:
    """Mask the longest end of ``form`` (``MIN_FRAGMENT`` or more) that starts at
    ``after``."""
    key = form[-MIN_FRAGMENT:]
    at = text.rfind(key, after, min(len(text), after + len(form)))
    while at >= 0:
        end = at + MIN_FRAGMENT
        if form.endswith(text[after:end]):
            spans.append((after, end))
            return
        at = text.rfind(key, after, end - 1)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    done = 0
    start, end = -1, -1
    for span_start, span_end in sorted(spans):
        if span_start <= end:
            end = max(end, span_end)
            continue
        if end >= 0:
            out.append(text[done:start])
            out.append(MASK)
            done = end
        start, end = span_start, span_end
    out.append(text[done:start])
    out.append(MASK)
    out.append(text[end:])
    return "".join(out)


# -- the forms of a value ------------------------------------------------------------------


def _renderings(value: object) -> list[str]:
    """The unescaped texts that stand for ``value`` (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, Enum):
        member = f"{type(value).__name__}.{value.name}"
        return [*_renderings(value.value), member, value.name]
    if isinstance(value, str):
        return _str_renderings(value)
    if isinstance(value, int):
        try:
            return [str(value)]
        except ValueError:  # more digits than int-to-str allows: the repr is not printed
            return []
    if isinstance(value, float):
        return _float_renderings(value)
    if isinstance(value, Decimal):
        return _decimal_renderings(value)
    if isinstance(value, datetime):
        return _datetime_renderings(value)
    if isinstance(value, date):
        return [value.isoformat(), _repr_body(value)]
    if isinstance(value, time):
        naive = value.replace(tzinfo=None)
        return [value.isoformat(), naive.isoformat(), _repr_body(value), _repr_body(naive)[:-1]]
    if isinstance(value, UUID):
        return [str(value), value.hex, str(value).upper(), value.hex.upper()]
    if isinstance(value, bytes | bytearray):
        out = [repr(bytes(value))[2:-1]]
        with contextlib.suppress(UnicodeDecodeError):
            out += _str_renderings(bytes(value).decode("utf-8"))
        return out
    return [str(value), repr(value)]


def _repr_body(value: date | time) -> str:
    return repr(value).removeprefix("datetime.")


def _str_renderings(text: str) -> list[str]:
    out = [text]
    stripped = text.strip()
    if stripped != text:
        out.append(stripped)
    if 0 < len(stripped) <= _MAX_IMPLIED:
        for typed in _implied(stripped):
            out += _renderings(typed)
    return out


def _implied(text: str) -> Iterator[object]:
    """The typed values pydantic would make of a JSON string: ISO dates, datetimes and
    times, numbers, UUIDs."""
    first = text[0]
    if first.isdigit() or first in "+-.":
        if len(text) == 10 and text[4] == "-" == text[7]:
            yield from _parsed(date.fromisoformat, text)
        elif len(text) > 10 and text[4] == "-" and text[10] in "Tt ":
            yield from _parsed(datetime.fromisoformat, text)
        elif len(text) >= 5 and text[2] == ":":
            yield from _parsed(time.fromisoformat, text)
        elif all(c.isdigit() or c in "+-._eE" for c in text):
            for number in _parsed(Decimal, text):
                if isinstance(number, Decimal) and number.is_finite():
                    yield number
    if len(text) in (32, 36, 38, 45):
        yield from _parsed(UUID, text)


def _parsed(parse: Any, text: str) -> Iterator[object]:
    try:
        yield parse(text)
    except (ValueError, InvalidOperation):
        return


def _float_renderings(value: float) -> list[str]:
    text = repr(value)
    out = [text, json.dumps(value)]
    if value == value and abs(value) != float("inf"):
        number = Decimal(text)
        out.append(str(number))
        fixed = format(number, "f")
        if len(fixed) <= _MAX_FIXED:
            out.append(fixed)  # pydantic's JSON writes 1e-05 as 0.00001
        mantissa, e, exponent = text.partition("e")
        if e:  # and 1.5e-07 as 1.5e-7
            out.append(f"{mantissa}e{exponent[0]}{exponent[1:].lstrip('0')}")
        if value.is_integer() and abs(value) < 1e16:
            out.append(str(int(value)))
    return out


def _decimal_renderings(value: Decimal) -> list[str]:
    out = [str(value)]
    if value.is_finite():
        fixed = format(value, "f")
        if len(fixed) <= _MAX_FIXED:
            out.append(fixed)
        out.append(str(value.normalize()))
        if value != value.to_integral_value():
            as_float = float(value)
            if abs(as_float) != float("inf"):
                out.append(repr(as_float))
    return out


def _datetime_renderings(value: datetime) -> list[str]:
    naive = value.replace(tzinfo=None)
    return [
        str(value),
        value.isoformat(),
        str(naive),
        naive.isoformat(),
        _repr_body(value),
        _repr_body(naive)[:-1],  # ``datetime(1980, 2, 3, 4, 5``: whatever the timezone's repr
        value.date().isoformat(),
        _repr_body(value.date()),
    ]


def _escapes(text: str) -> set[str]:
    """``text`` as written inside quotes by repr, ascii and JSON, once and twice."""
    if text.isascii() and text.isprintable() and not any(c in text for c in "'\"\\"):
        return {text}
    once = _escaped(text)
    twice = {spelled for body in once if body != text for spelled in _escaped(body)}
    return once | twice


def _escaped(text: str) -> set[str]:
    single = repr(text + '"')[1:-2]  # the trailing '"' makes repr quote with ' and escape '
    single_ascii = ascii(text + '"')[1:-2]
    return {
        text,
        single,
        _double_quoted(single),
        single_ascii,
        _double_quoted(single_ascii),
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
    }


def _double_quoted(single: str) -> str:
    """A single-quoted repr body rewritten as the same body between double quotes."""
    return "\\\\".join(
        part.replace("\\'", "'").replace('"', '\\"') for part in single.split("\\\\")
    )


# -- exceptions and validation errors ------------------------------------------------------

_INPUT_VALUE = ", input_value="
_INPUT_TYPE = ", input_type="


def validation_text(exc: ValidationError, shown: int = 5) -> str:
    """``loc: msg [type=…]; …`` for the first ``shown`` problems, never with input values.

    A custom validator's message may quote the value: scrub the result (``describe``)."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(str(part) for part in p['loc']) or 'record'}: {p['msg']} [type={p['type']}]"
        for p in problems[:shown]
    ]
    if len(problems) > shown:
        parts.append(f"and {len(problems) - shown} more")
    return "; ".join(parts)


def strip_input_values(text: str) -> str:
    """``text`` without pydantic's ``, input_value=…, input_type=…`` (the message of a
    validation error, embedded in another message, say). The type of error stays."""
    at = text.find(_INPUT_VALUE)
    if at < 0:
        return text
    out: list[str] = []
    done = 0
    while at >= 0:
        line_end = text.find("\n", at)
        line_end = len(text) if line_end < 0 else line_end
        type_at = text.rfind(_INPUT_TYPE, at, line_end)  # the last: a value may hold the words
        close = text.find("]", type_at, line_end) if type_at >= 0 else -1
        out.append(text[done:at])
        done = close if close >= 0 else line_end
        at = text.find(_INPUT_VALUE, done)
    out.append(text[done:])
    return "".join(out)


def error_text(exc: BaseException) -> str:
    """How an exception is told to people, before scrubbing: a validation error by
    ``validation_text``, anything else by ``str`` without pydantic's input values."""
    if isinstance(exc, ValidationError):
        return validation_text(exc)
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the failure it reports
        return f"<{type(exc).__name__}: message could not be rendered>"
    return strip_input_values(text)
