"""Property: whatever a sensitive value is and however a text renders it, no form of it
survives scrubbing; and a text that holds no form of it comes back unchanged.

The oracle below is written from the rules in ``northmigrate.redact``'s docstring with the
standard renderers (``str``, ``repr``, ``ascii``, ``json``, pydantic's JSON), not with the
module's own code.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any
from uuid import UUID

import pydantic_core
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from northmigrate.redact import MIN_FRAGMENT, Scrubber


class Colour(Enum):
    RED = "red"
    DEEP_BLUE = "deep blue sky"
    X = "x"


class Level(IntEnum):
    LOW = 1
    HIGH = 20


class Holder(BaseModel):
    value: Any
    note: str = "plain"


# -- values -------------------------------------------------------------------------------

UNICODE = st.characters(blacklist_categories=("Cs",), blacklist_characters="*")
AWKWARD = st.sampled_from(list("'\"\\\t\n\r\x00\x1f\x7f\x85\u2028éÉ東🚀 aZ09-_.:=…"))
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
ZONES = st.none() | st.just(UTC) | OFFSETS


def _has_text(value: object) -> bool:
    return not isinstance(value, str) or bool(value.strip())


VALUES = st.one_of(
    st.text(UNICODE, min_size=1, max_size=70),
    st.text(AWKWARD, min_size=1, max_size=70),
    st.text(UNICODE, min_size=1, max_size=2),
    st.text(AWKWARD, min_size=1, max_size=2),
    st.dates(),
    st.datetimes(timezones=ZONES),
    st.times(timezones=ZONES),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("-0"), Decimal("1E+5"), Decimal("0E-7"), Decimal("-1.230E-10")]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-05, 1.5e-07, 1e16, 1e22, -0.0, 5e-324, 1.2345678901234568e20]),
    st.uuids(),
    st.sampled_from(Colour),
    st.sampled_from(Level),
).filter(_has_text)


# -- the oracle ---------------------------------------------------------------------------


def _bodies(text: str) -> set[str]:
    """``text`` as a quoted string's body: plain, repr, ascii, JSON (both ensure_ascii)."""
    return {
        text,
        repr(text)[1:-1],
        ascii(text)[1:-1],
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
    }


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _cores(value: object, *, typed: bool = True) -> tuple[set[str], set[str]]:
    """(texts that must not appear whole, texts whose heads and tails must not appear
    beside an ellipsis). ``typed=False``: only what the JSON record's value can know."""
    if isinstance(value, Enum):
        whole, pieces = _cores(value.value, typed=typed)
        if typed:
            names = {value.name, f"{type(value).__name__}.{value.name}"}
            return whole | names | {repr(value)}, pieces | names
        return whole, pieces
    if isinstance(value, str):
        found = {value, value.strip()}
        return found, found
    pieces = {
        str(value),
        _unquoted(json.dumps(value, default=str)),
        _unquoted(pydantic_core.to_json(value).decode()),
    }
    whole = {*pieces, repr(value)}
    if isinstance(value, date | time):
        pieces |= {value.isoformat(), repr(value).removeprefix("datetime.")}
        if isinstance(value, datetime):
            pieces |= {value.date().isoformat(), repr(value.date()).removeprefix("datetime.")}
        if isinstance(value, datetime | time):
            plain = value.replace(tzinfo=None, fold=0)  # what an ISO string can tell
            pieces |= {plain.isoformat(), str(plain), repr(plain).removeprefix("datetime.")[:-1]}
            if not typed:
                pieces.discard(repr(value).removeprefix("datetime."))
    if isinstance(value, UUID):
        pieces.add(value.hex)
    return whole, pieces


def _token(text: str, found: str) -> bool:
    """``found`` stands in ``text`` as a whole token (the rule for 2-character values)."""
    before = r"(?<![^\W])" if found[0].isalnum() or found[0] == "_" else ""
    after = r"(?![^\W])" if found[-1].isalnum() or found[-1] == "_" else ""
    return re.search(before + re.escape(found) + after, text) is not None


def _as_value(text: str, found: str) -> bool:
    """``found`` is rendered as a value in ``text`` (the rule for 1-character values)."""
    quoted = any(f"{q}{found}{q}" in text for q in ("'", '"', "\\'", '\\"'))
    assigned = re.search(r"(?:=|= |:|: )" + re.escape(found) + r"(?![^\W])", text)
    return quoted or assigned is not None


def leaks(text: str, value: object, *, typed: bool = True) -> list[str]:
    whole, pieces = _cores(value, typed=typed)
    found: list[str] = []
    for core in whole | pieces:
        if not core.strip():
            continue
        for body in _bodies(core):
            if len(core) >= 3:
                if body in text:
                    found.append(body)
            elif (_token if len(core) == 2 else _as_value)(text, body):
                found.append(body)
    if "..." in text or "…" in text:
        for core in pieces:
            if len(core) < 3 or not core.strip():
                continue
            for body in _bodies(core):
                for size in range(MIN_FRAGMENT, len(body)):
                    for ellipsis in ("...", "…"):
                        if body[:size] + ellipsis in text or ellipsis + body[-size:] in text:
                            found.append(f"{body[:size]}|{body[-size:]}")
    return found


# -- texts --------------------------------------------------------------------------------


def _validation_message(data: object) -> str:
    try:
        TypeAdapter(list[int]).validate_python(data)
    except ValidationError as exc:
        return str(exc)
    raise AssertionError("a list of ints was not expected")


def renderings(value: object, pad: int) -> list[str]:
    holder = Holder(value=value)
    return [
        f"error: {value} (retry)",
        f"error: {value!r} (retry)",
        f"error: {value!a}",
        json.dumps({"reason": value}, default=str),
        json.dumps({"reason": value}, default=str, ensure_ascii=False),
        f"could not write {holder!r}",
        f"could not write {holder!a}",
        holder.model_dump_json(),
        _validation_message(value),  # input_value=repr(value), cut when over 50 bytes
        _validation_message({"pad": "p" * pad, "value": value, "end": "."}),  # cut inside
    ]


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(value=VALUES, pad=st.integers(0, 30))
def test_no_form_of_a_typed_value_survives(value: object, pad: int) -> None:
    scrubber = Scrubber.for_values([value])
    for text in renderings(value, pad):
        out = scrubber.scrub(text)
        assert leaks(out, value) == [], (text, out)
        assert scrubber.scrub(out) == out


@PROPERTY
@given(value=VALUES, pad=st.integers(0, 30))
def test_the_json_records_value_hides_the_models_value(value: object, pad: int) -> None:
    """The worker knows the JSON record; the handler's texts show the model's typed value."""
    scrubber = Scrubber.for_values([pydantic_core.to_jsonable_python(value)])
    for text in renderings(value, pad):
        out = scrubber.scrub(text)
        assert leaks(out, value, typed=False) == [], (text, out)


PROSE = st.text(
    st.sampled_from(list("abcxyzABCXYZé東 _-'\"=:.,;()[]{}<>…\t\n")), min_size=0, max_size=80
)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, text=PROSE)
def test_a_text_without_the_value_is_unchanged(value: object, text: str) -> None:
    assume(leaks(text, value) == [])
    assert Scrubber.for_values([value]).scrub(text) == text
