"""Hostile input: whatever the bytes, a reported rejection or a clean SourceError (exit 2).

Never another exception, never a hang, never a line that silently disappears.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from northmigrate.examples.onboarding import migration
from northmigrate.records import envelope
from northmigrate.records.sample import SampleGenerator
from northmigrate.records.validation import Validator
from northmigrate.sources import SourceError
from northmigrate.sources.files import read_csv, read_json_array, read_jsonl

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def check_all(items: Any) -> list[Any]:
    validator = Validator(migration, max_message_size=262_144)
    return [validator.check(item) for item in items]


@given(st.binary(max_size=3000))
@FAST
def test_jsonl_bytes_each_line_is_one_outcome(data: bytes) -> None:
    outcomes = check_all(read_jsonl(io.BytesIO(data)))
    for outcome in outcomes:
        assert outcome.kind in {"eligible", "ineligible", "duplicate", "invalid"}
        if outcome.kind == "invalid":
            assert outcome.rejection is not None and outcome.rejection.line == outcome.item.line


@given(st.lists(json_values, max_size=10))
@FAST
def test_any_json_value_is_validated_not_crashed(values: list[Any]) -> None:
    text = "\n".join(json.dumps(v) for v in values)
    outcomes = check_all(read_jsonl(io.BytesIO(text.encode())))
    assert len(outcomes) == len(values)
    assert all(o.kind == "invalid" for o in outcomes)  # none of these is an onboarding record


@given(st.binary(max_size=2000))
@FAST
def test_json_array_bytes_give_items_or_a_source_error(data: bytes) -> None:
    try:
        check_all(read_json_array(io.BytesIO(b"[" + data)))
    except SourceError as exc:
        assert "line" in str(exc)


@given(st.binary(max_size=2000))
@FAST
def test_csv_bytes_give_items_or_a_source_error(data: bytes) -> None:
    try:
        outcomes = check_all(read_csv(io.BytesIO(b"application_id,status\n" + data)))
    except SourceError as exc:
        assert "line" in str(exc)
        return
    assert all(o.item.line is not None and o.item.line >= 2 for o in outcomes)


@given(st.text(max_size=500) | json_values.map(json.dumps))
@FAST
def test_envelope_parse_on_anything(body: str) -> None:
    try:
        env = envelope.parse(body)
    except envelope.EnvelopeError as exc:
        assert str(exc)
    else:
        assert isinstance(env.record, dict)


@pytest.mark.parametrize(
    "line",
    [
        "[" * 200_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"application_id": NaN}',
        "\ufeff" + json.dumps({"x": 1}),
        json.dumps("just a string"),
        "null",
    ],
)
def test_nasty_single_lines_are_rejections(line: str) -> None:
    (outcome,) = check_all(read_jsonl(io.BytesIO(line.encode())))
    assert (
        outcome.kind == "invalid" and outcome.rejection is not None and outcome.rejection.line == 1
    )


def test_a_bom_does_not_hide_the_first_record() -> None:
    record = SampleGenerator(1).record(1)
    record["status"] = "approved"
    data = b"\xef\xbb\xbf" + json.dumps(record).encode() + b"\n"
    (outcome,) = check_all(read_jsonl(io.BytesIO(data)))
    assert outcome.kind == "eligible"


def test_csv_missing_and_extra_columns() -> None:
    data = b"application_id,status\nAPP-0000001\nAPP-0000002,approved,extra\n"
    outcomes = check_all(read_csv(io.BytesIO(data)))
    assert [(o.item.line, o.kind) for o in outcomes] == [(2, "invalid"), (3, "invalid")]
    assert "columns" in (outcomes[0].rejection.error if outcomes[0].rejection else "")
