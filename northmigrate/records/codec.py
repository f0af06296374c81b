"""The one parse path of a record: JSON text in, a validated model out, every number exact.

A record travels as JSON text: read from the source, carried in the message envelope, read
again by the worker or the Lambda handler, and by ``reconcile``. Every one of those readers
calls :func:`loads` and then the model's ``model_validate`` (:func:`validate`), so the plugin's
handler, its ``verify`` and every hash see a model equal, field by field and to the last
digit, to the one ``validate`` accepted.

- Numbers: a JSON number with a fraction or an exponent becomes a ``Decimal`` holding exactly
  the digits of the text (``12345678901234567.89``, ``0.10000000000000000555``, ``1E+2`` and
  ``100.00`` stay what they are); an integer becomes an ``int``. pydantic then converts as the
  model says (a ``Decimal`` field keeps the digits, a ``float`` field rounds once, as Python
  does). pydantic's own JSON parser is not used: it reads every fraction as a binary float
  first, which changes amounts (pydantic issue 9180).
- ``-0`` becomes ``Decimal('-0')`` (an ``int`` has no negative zero); an ``int`` field
  takes it as 0.
- ``NaN`` and ``Infinity`` are not JSON and are refused; an integer of more than
  ``MAX_INT_DIGITS`` digits is refused with a reason (Python's own limit on converting text
  to ``int``), never an internal error. So is a number with a fraction or an exponent that
  has more than ``MAX_INT_DIGITS`` digits or whose magnitude is beyond ``10**±MAX_EXPONENT``
  (``1e999999999``, ``1e-999999999``): an ``int`` field would turn it into an integer of a
  billion digits (minutes and gigabytes), and no amount, count or measure is that large.
  The reason names neither the number nor its digits.
- :func:`dumps` writes data (from a CSV row or a DynamoDB item: str, int, ``Decimal``, bool,
  None, lists and objects) as JSON text with every ``Decimal`` written digit for digit, so
  that ``loads(dumps(data))`` gives the same values back.
"""

from __future__ import annotations

import json
import json.encoder
import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

MAX_INT_DIGITS = 4_300  # sys.get_int_max_str_digits() by default
MAX_EXPONENT = MAX_INT_DIGITS - 1  # 10**4299 as an int still has MAX_INT_DIGITS digits


class RecordSyntaxError(ValueError):
    """The text is not a JSON record northmigrate can read exactly (the reason is safe to show:
    it never holds a value)."""


def _int(text: str) -> int | Decimal:
    if len(text) > MAX_INT_DIGITS + 1:  # + 1 for a sign
        raise RecordSyntaxError(f"a number has more than {MAX_INT_DIGITS} digits")
    if text == "-0":  # an int has no negative zero: keep the sign the text gave
        return Decimal(text)
    return int(text)


def _decimal(text: str) -> Decimal:
    if len(text) > 2 * MAX_INT_DIGITS:  # more digits than the bound, whatever the exponent
        raise RecordSyntaxError(f"a number has more than {MAX_INT_DIGITS} digits")
    number = Decimal(text)
    if len(number.as_tuple().digits) > MAX_INT_DIGITS:
        raise RecordSyntaxError(f"a number has more than {MAX_INT_DIGITS} digits")
    if number and not -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
        raise RecordSyntaxError(f"a number is beyond 10^±{MAX_EXPONENT}")
    return number


def _constant(name: str) -> Any:
    raise RecordSyntaxError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=_decimal, parse_int=_int, parse_constant=_constant)


def _int_as_written(text: str) -> int | Decimal:
    """An integer, or one too long to convert as the ``Decimal`` of its digits (for readers
    that only show or mask it)."""
    return Decimal(text) if len(text) > MAX_INT_DIGITS + 1 else _int(text)


_AS_WRITTEN = json.JSONDecoder(
    parse_float=Decimal, parse_int=_int_as_written, parse_constant=_constant
)


def loads(text: str, *, bounded: bool = True) -> Any:
    """JSON text as Python data, numbers exact (see the module docstring).

    ``bounded=False`` keeps a number beyond the bounds as the ``Decimal`` it is written as,
    for readers that only show or mask a message (``dlq inspect``), never build a model of
    it. Raises :class:`RecordSyntaxError` with a reason that never holds a value of the
    record.
    """
    try:
        return (_DECODER if bounded else _AS_WRITTEN).decode(text)
    except RecordSyntaxError:
        raise
    except json.JSONDecodeError as exc:
        # json's own words may end in "at" ("Unterminated string starting at"): say it once.
        what = exc.msg.removesuffix(" at")
        raise RecordSyntaxError(f"invalid JSON ({what} at column {exc.colno})") from None
    except RecursionError:
        raise RecordSyntaxError("record is nested too deeply") from None
    except ValueError as exc:  # a number Python cannot convert
        raise RecordSyntaxError(f"invalid JSON number ({type(exc).__name__})") from None


def validate(model: type[BaseModel], text: str) -> BaseModel:
    """The record in ``text`` validated by ``model``: :func:`loads`, then :func:`build`.

    Raises :class:`RecordSyntaxError` (not JSON, not an object) or whatever :func:`build`
    raises.
    """
    return build(model, loads(text))


def build(model: type[BaseModel], data: Any) -> BaseModel:
    """The model of data that :func:`loads` gave (an envelope's ``record``, say): the one way
    every reader builds it, so that ``validate``, the worker, the Lambda handler and
    ``reconcile`` get equal models.

    Raises :class:`RecordSyntaxError` when ``data`` is not an object, pydantic's
    ``ValidationError``, or what a model validator of the plugin raises.
    """
    if not isinstance(data, dict):
        raise RecordSyntaxError("record is not a JSON object")
    return model.model_validate(data)


_string = json.encoder.encode_basestring  # ensure_ascii=False (C)
_string_ascii = json.encoder.encode_basestring_ascii


def dumps(data: Any, *, ascii_only: bool = False) -> str:
    """``data`` as compact JSON text, each ``Decimal`` written exactly (see the docstring);
    with ``ascii_only`` every character past ASCII is written as an escape.

    Raises :class:`RecordSyntaxError` for a value JSON cannot hold (NaN, infinity, a type
    other than str, int, float, Decimal, bool, None, list, tuple and str-keyed dict).
    """
    parts: list[str] = []
    try:
        _encode(data, parts, _string_ascii if ascii_only else _string)
        text = "".join(parts)
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the same value, written with escapes
        parts = []
        _encode(data, parts, _string_ascii)
        text = "".join(parts)
    except RecursionError:
        raise RecordSyntaxError("record is nested too deeply") from None
    return text


def pretty(data: Any, indent: int = 2, *, level: int = 0) -> str:
    """``data`` as indented JSON text for a person to read, every number written exactly as
    :func:`dumps` writes it (``json.dumps`` refuses a ``Decimal``), non-ASCII kept."""
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(data, dict) and data:
        deeper = level + 1
        items = [f"{inner}{dumps(k)}: {pretty(v, indent, level=deeper)}" for k, v in data.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(data, list | tuple) and data:
        items = [f"{inner}{pretty(v, indent, level=level + 1)}" for v in data]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return dumps(data)


def _encode(value: Any, out: list[str], string: Any) -> None:
    if isinstance(value, str):
        out.append(string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise RecordSyntaxError(f"{value} is not a JSON number")
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RecordSyntaxError(f"{value} is not a JSON number")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecordSyntaxError("an object key is not a string")
            if not first:
                out.append(",")
            first = False
            out.append(string(key))
            out.append(":")
            _encode(item, out, string)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, string)
        out.append("]")
    else:
        raise RecordSyntaxError(f"a {type(value).__name__} is not a JSON value")
