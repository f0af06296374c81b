"""The mover's redrive history: written into the body's text where it can be, and then the
same JSON value as envelope.with_history gives, every number exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate import records
from northmigrate.dlq.mover import redriven_body
from northmigrate.records import envelope

ENTRY = envelope.redrive_entry(source="work-dlq", destination="work", run="r1")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=12),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
failure = st.fixed_dictionaries({"reason": st.text(max_size=10), "attempt": st.integers(1, 9)})


def body(record: dict[str, Any], extra: dict[str, Any]) -> str:
    data = {envelope.MARKER: envelope.ENVELOPE_VERSION, "record_id": "R1", "record": record}
    data.update({k: v for k, v in extra.items() if k not in data})
    return records.dumps(data)


@given(
    record=st.dictionaries(st.text(max_size=5), values, max_size=4),
    failures=st.one_of(
        st.none(),
        st.lists(failure, max_size=23),
        st.just("not a list"),
        st.lists(st.one_of(failure, st.integers()), max_size=4),
    ),
    redrives=st.one_of(st.none(), st.lists(failure, max_size=3)),
    unknown=st.dictionaries(st.sampled_from(["later", "x-key"]), values, max_size=2),
    spaced=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_the_redriven_body_is_the_value_with_history_gives(
    record: dict[str, Any],
    failures: Any,
    redrives: Any,
    unknown: dict[str, Any],
    spaced: bool,
) -> None:
    extra = dict(unknown)
    if failures is not None:
        extra["failures"] = failures
    if redrives is not None:
        extra["redrives"] = redrives
    text = body(record, extra) + ("  \n" if spaced else "")
    got = redriven_body(text, ENTRY)
    want = envelope.with_history(text, "redrives", ENTRY)
    assert records.loads(got) == records.loads(want)
    assert list(records.loads(got)) == list(records.loads(want))  # the keys' order too
    assert records.loads(got)["redrives"][-1] == ENTRY


def test_a_first_redrive_keeps_the_record_text_as_it_came() -> None:
    head = f'{{"{envelope.MARKER}":{envelope.ENVELOPE_VERSION},"record_id":"R1",'
    text = head + '"record":{"amount":1.10,"big":1E+400},"failures":[{"reason":"x"}]}'
    got = redriven_body(text, ENTRY)
    assert got.startswith(text[:-1])  # written as it came, every digit
    assert records.loads(got)["record"]["amount"] == Decimal("1.10")
    assert records.loads(got)["redrives"] == [ENTRY]


def test_a_body_that_is_no_envelope_goes_back_unchanged() -> None:
    for text in ("plain text", '{"a":1}', "[1,2]"):
        assert redriven_body(text, ENTRY) == text
