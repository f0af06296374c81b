from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.examples.onboarding import migration
from northmigrate.records import envelope
from northmigrate.records.sample import SampleGenerator
from northmigrate.records.validation import Tally, Validator
from northmigrate.sources import SourceItem


def record(n: int = 1, **changes: Any) -> dict[str, Any]:
    rec = SampleGenerator(seed=n).record(n)
    rec["status"] = "approved"
    rec.update(changes)
    return rec


def validator(max_size: int = 262_144, fifo: bool = False) -> Validator:
    return Validator(
        migration, max_message_size=max_size, run_id="run-1", source_name="f.jsonl", fifo=fifo
    )


def test_eligible_record_becomes_an_envelope_with_the_raw_record() -> None:
    rec = record()
    text = json.dumps(rec)
    checked = validator().check(SourceItem(7, text=text))
    assert checked.kind == "eligible" and checked.message is not None
    env = envelope.parse(checked.message.body)
    assert env.record == rec
    assert (env.migration, env.record_id, env.run_id, env.line) == (
        "onboarding-v2",
        rec["application_id"],
        "run-1",
        7,
    )
    assert (
        checked.message.attributes[envelope.ATTR_RECORD_ID]["StringValue"] == rec["application_id"]
    )
    assert checked.message.size >= len(checked.message.body)


def test_ineligible_duplicate_invalid() -> None:
    v = validator()
    draft = record(1, status="draft")
    assert v.check(SourceItem(1, data=draft)).kind == "ineligible"
    assert v.check(SourceItem(2, data=draft)).kind == "duplicate"
    bad = v.check(SourceItem(3, text='{"application_id": "APP-0000009"}'))
    assert bad.kind == "invalid" and bad.rejection is not None
    assert bad.rejection.record_id == "APP-0000009"
    assert bad.rejection.line == 3
    assert bad.rejection.field == "customer_id"
    oops = v.check(SourceItem(4, text="{oops")).rejection
    assert oops is not None and oops.error.startswith("invalid JSON (Expecting property name")
    assert v.check(SourceItem(5, text="[1, 2]")).rejection.error == "record is not a JSON object"  # type: ignore[union-attr]
    assert v.check(SourceItem(6, error="line is not valid UTF-8")).kind == "invalid"


def test_oversize_record_is_invalid_with_its_size() -> None:
    rec = record(referral_code="x" * 5000)
    checked = validator(max_size=4096).check(SourceItem(1, data=rec))
    assert checked.kind == "invalid"
    assert (
        checked.rejection is not None
        and "the queue accepts at most 4096" in checked.rejection.error
    )


def test_message_size_counts_utf8_bytes_and_the_attribute() -> None:
    attribute = len(envelope.ATTR_RECORD_ID) + len("String")
    for referral in ("plain ascii", "Zoë Ðorđević 東京 🚀"):
        rec = record(referral_code=referral)
        message = validator().check(SourceItem(1, text=json.dumps(rec, ensure_ascii=False))).message
        assert message is not None
        body_bytes = len(message.body.encode("utf-8"))
        assert message.size == body_bytes + attribute + len(rec["application_id"])
    assert body_bytes > len(message.body)  # the multi-byte case really was multi-byte


def test_errors_never_carry_sensitive_values() -> None:
    rec = record()
    rec["owners"][0]["tax_id"] = "987654321"  # wrong format: the value must not be echoed
    rec["owners"][0]["date_of_birth"] = "1980-13-45"
    checked = validator().check(SourceItem(1, data=rec))
    assert checked.rejection is not None
    assert "987654321" not in checked.rejection.error
    assert "1980-13-45" not in checked.rejection.error
    assert "owners.0.tax_id" in checked.rejection.error


def test_fifo_messages_get_group_and_stable_dedup_ids() -> None:
    rec = record()
    one = validator(fifo=True).check(SourceItem(1, data=rec)).message
    two = validator(fifo=True).check(SourceItem(9, data=rec)).message
    assert one is not None and two is not None
    assert one.group_id == rec["application_id"]
    assert one.dedup_id == two.dedup_id and one.dedup_id is not None


@given(
    st.lists(
        st.one_of(
            st.integers(1, 30).map(lambda n: ("record", n)),
            st.sampled_from(["{", "[]", "null", '{"application_id": 5}', ""]).map(
                lambda t: ("text", t)
            ),
        ),
        max_size=40,
    )
)
@settings(max_examples=50, deadline=None)
def test_counts_always_add_up(entries: list[tuple[str, Any]]) -> None:
    v = validator()
    tally = Tally()
    for line, (kind, value) in enumerate(entries, 1):
        item = (
            SourceItem(line, data=record(value))
            if kind == "record"
            else SourceItem(line, text=value)
        )
        tally.add(v.check(item))
    assert tally.read == len(entries)
    assert tally.read == tally.valid + tally.invalid + tally.duplicates
    assert tally.valid == tally.eligible + tally.ineligible
    assert tally.errors_total == tally.invalid + tally.duplicates


@given(st.lists(st.text(max_size=12), max_size=400))
@settings(max_examples=100, deadline=None)
def test_keyset_matches_a_set(keys: list[str]) -> None:
    from northmigrate.records.validation import KeySet

    compact, plain = KeySet(capacity=4), set()
    for key in keys:
        assert compact.add(key) == (key not in plain)
        plain.add(key)
    assert len(compact) == len(plain)
