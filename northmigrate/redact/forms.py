"""The forms a value takes in a text: its renderings, and their escapes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation
from enum import Enum
from typing import Any
from uuid import UUID

MIN_FRAGMENT = 3  # the shortest piece of a truncated value that is masked beside an ellipsis
ELLIPSES = ("...", "…")
LONG = 3  # renderings this long are masked anywhere; shorter ones only as tokens or values
_MAX_IMPLIED = 64  # strings longer than this are not parsed as dates, numbers or UUIDs
_MAX_FIXED = 64  # a Decimal's fixed-point form is added only up to this length
_FLOAT_EXPONENT = 330  # a Decimal further from 1 than 10**±this is no float's value


# -- the forms of a value ------------------------------------------------------------------


def renderings(value: object) -> list[str]:
    """The unescaped texts that stand for ``value`` (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, Enum):
        member = f"{type(value).__name__}.{value.name}"
        return [*renderings(value.value), member, value.name]
    if isinstance(value, str):
        return _strrenderings(value)
    if isinstance(value, int):
        try:
            return [str(value)]
        except ValueError:  # more digits than int-to-str allows: the repr is not printed
            return []
    if isinstance(value, float):
        return _floatrenderings(value)
    if isinstance(value, Decimal):
        return _decimalrenderings(value)
    if isinstance(value, datetime):
        return _datetimerenderings(value)
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
            out += _strrenderings(bytes(value).decode("utf-8"))
        return out
    return [str(value), repr(value)]


def _repr_body(value: date | time) -> str:
    return repr(value).removeprefix("datetime.")


def _strrenderings(text: str) -> list[str]:
    out = [text]
    stripped = text.strip()
    if stripped != text:
        out.append(stripped)
    if 0 < len(stripped) <= _MAX_IMPLIED:
        for typed in _implied(stripped):
            out += renderings(typed)
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


def _floatrenderings(value: float) -> list[str]:
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


def _decimalrenderings(value: Decimal) -> list[str]:
    """A Decimal's forms, each computed only when it is short: ``1e999999999`` has a
    billion-digit fixed-point form, and its normalised form overflows the default context.
    No form is ever longer than ``_MAX_FIXED`` or the value's own ``str``."""
    out = [str(value)]
    if not value.is_finite():
        return out
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if _fixed_length(sign, len(digits), exponent) <= _MAX_FIXED:
        out.append(format(value, "f"))
    context = Context(prec=max(len(digits), 1), Emax=MAX_EMAX, Emin=MIN_EMIN)
    out.append(str(value.normalize(context)))
    if exponent < 0 and -_FLOAT_EXPONENT <= value.adjusted() <= _FLOAT_EXPONENT:
        as_float = float(value)  # short: the value is within a float's range
        if as_float and abs(as_float) != float("inf"):
            out.append(repr(as_float))
    return out


def _fixed_length(sign: int, digits: int, exponent: int) -> int:
    """How long ``format(value, "f")`` is, without writing it."""
    if exponent >= 0:
        body = digits + exponent
    elif digits > -exponent:
        body = digits + 1  # a point inside the digits
    else:
        body = -exponent + 2  # "0." and the zeros before the digits
    return sign + body


def _datetimerenderings(value: datetime) -> list[str]:
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


def escapes(text: str) -> set[str]:
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
