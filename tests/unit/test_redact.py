"""Sensitive values never leave in an error text, whatever form the text gives them.

Each leak test renders a record the way a handler or pydantic does (repr, JSON, ascii, a
``ValidationError``) and scrubs it the way the worker does: with the values of the record's
sensitive fields, read from the JSON record (``sensitive_values``) or from the typed model
(``Scrubber.for_record``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from northmigrate.redact import (
    MASK,
    Scrubber,
    error_text,
    scrub,
    sensitive_leaves,
    sensitive_values,
    strip_input_values,
    validation_text,
)


class Tier(Enum):
    GOLD = "gold-tier"
    LEAD = "lead"


class Owner(BaseModel):
    name: str
    dob: date
    ssn: str
    code: str = "none"
    sex: str = "X"
    children: int = 0


class Account(BaseModel):
    account_id: str
    opened_at: datetime
    opens: time
    balance: Decimal
    token: UUID
    tier: Tier
    rate: float
    owners: list[Owner]


SENSITIVE = (
    "owners.name",
    "owners.dob",
    "owners.ssn",
    "owners.code",
    "owners.sex",
    "owners.children",
    "opened_at",
    "opens",
    "balance",
    "token",
    "tier",
    "rate",
)

RECORD: dict[str, Any] = {
    "account_id": "ACC-1",
    "opened_at": "2019-07-08T09:10:11Z",
    "opens": "08:30:00",
    "balance": "1234.50",
    "token": "6F9619FF-8B86-D011-B42D-00CF4FC964FF",
    "tier": "gold-tier",
    "rate": 0.0375,
    "owners": [
        {
            "name": 'Zoë O\'Brien "Jo"',
            "dob": "1980-02-03",
            "ssn": "TAB\tSSN-6666",
            "code": "QZ",
            "sex": "F",
            "children": 7,
        },
        {"name": "Ana Lima", "dob": "1975-12-31", "ssn": "900-12-3456"},
    ],
}
ACCOUNT = Account.model_validate(RECORD)

# The record's values as the text may spell them; none may survive scrubbing.
SPELLINGS = [
    "1980-02-03",
    "1980, 2, 3",
    "1975, 12, 31",
    "2019, 7, 8, 9, 10, 11",
    "2019-07-08T09:10:11",
    "2019-07-08 09:10:11",
    "time(8, 30)",
    "08:30:00",
    "1234.50",
    "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
    "6F9619FF-8B86-D011-B42D-00CF4FC964FF",
    "6f9619ff8b86d011b42d00cf4fc964ff",
    "gold-tier",
    "0.0375",
    "TAB\tSSN-6666",
    "TAB\\tSSN-6666",
    "TAB\\\\tSSN-6666",
    "O'Brien",
    "O\\'Brien",
    '\\"Jo\\"',
    "Zo\\xeb",
    "Zo\\u00eb",
    "Zoë",
    "Ana Lima",
    "900-12-3456",
]
# Short values: masked where rendered as a value (quoted, ``name=value``, ``"name": value``).
SHORT_SPELLINGS = ["'F'", '"F"', "\\'F\\'", '\\"F\\"', "=7", ": 7", ":7", "QZ"]

RENDERERS: dict[str, Callable[[Account], str]] = {
    "repr": lambda a: f"failed on {a!r}",
    "str": lambda a: f"failed on {a}",
    "ascii": lambda a: f"failed on {a!a}",
    "dump repr": lambda a: f"failed on {a.model_dump()!r}",
    "json": lambda a: a.model_dump_json(),
    "json ascii": lambda a: json.dumps(a.model_dump(mode="json")),
    "json unicode": lambda a: json.dumps(a.model_dump(mode="json"), ensure_ascii=False),
    "repr of repr": lambda a: repr(f"failed on {a!r}"),
    "json of repr": lambda a: json.dumps(f"failed on {a!r}"),
}


def visible(text: str, typed: bool = False) -> list[str]:
    names = ["GOLD"] if typed else []  # an enum member's name is known from the model only
    return [s for s in [*SPELLINGS, *SHORT_SPELLINGS, *names] if s in text]


@pytest.mark.parametrize("render", RENDERERS.values(), ids=RENDERERS.keys())
def test_every_rendering_of_a_typed_record_is_scrubbed_with_the_json_records_values(
    render: Callable[[Account], str],
) -> None:
    """The worker's case: the values come from the JSON record, the text from the model."""
    text = render(ACCOUNT)
    assert visible(text), "the rendering shows the values (the test would prove nothing)"
    out = scrub(text, sensitive_values(RECORD, SENSITIVE))
    assert visible(out) == [], out
    assert "ACC-1" in out  # not sensitive: still there


@pytest.mark.parametrize("render", RENDERERS.values(), ids=RENDERERS.keys())
def test_every_rendering_is_scrubbed_with_the_models_typed_values(
    render: Callable[[Account], str],
) -> None:
    out = Scrubber.for_record(ACCOUNT, SENSITIVE).scrub(render(ACCOUNT))
    assert visible(out, typed=True) == [], out
    assert "ACC-1" in out


def test_a_date_in_repr_is_masked() -> None:
    text = "bad owner Owner(name='Ana Lima', dob=datetime.date(1980, 2, 3), ssn='900-12-3456')"
    out = scrub(text, sensitive_values({"dob": "1980-02-03"}, ["dob"]))
    assert "1980, 2, 3" not in out and MASK in out


def test_a_value_with_a_tab_is_masked_as_repr_and_json_write_it() -> None:
    secret = {"ssn": "TAB\tSSN-6666"}
    values = sensitive_values(secret, ["ssn"])
    for text in (repr(secret), json.dumps(secret), ascii(secret)):
        assert "SSN-6666" not in scrub(text, values)


@pytest.mark.parametrize(
    "value",
    ["O'Brien", 'say "hi" now', "both ' and \"", "back\\slash", "Zoë Élan", "東京 🚀 tower"],
)
def test_quotes_backslashes_and_non_ascii_are_masked_in_every_escape(value: str) -> None:
    values = sensitive_values({"v": value}, ["v"])
    texts = [
        repr(value),
        ascii(value),
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        repr(repr(value)),
        ascii(repr(value)),
        json.dumps(repr(value)),
        json.dumps(json.dumps(value)),
    ]
    for text in texts:
        out = scrub(text, values)
        assert MASK in out and not any(c.isalnum() for c in out), (text, out)


def test_pydantic_truncated_input_value_is_masked() -> None:
    note = "SECRETNOTE-" + "x" * 40 + "-ENDSECRET"

    class Strict(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Strict.model_validate({"count": note})
    text = str(caught.value)
    assert "input_value='SECRETNOTE-" in text and "-ENDSECRET'" in text  # truncated, not whole
    assert note not in text
    out = scrub(text, sensitive_values({"note": note}, ["note"]))
    assert "SECRETNOTE" not in out and "ENDSECRET" not in out
    assert f"input_value='{MASK}...{MASK}'" in out


def test_a_fragment_cut_inside_a_whole_records_repr_is_masked() -> None:
    """pydantic truncates the repr of the whole input: the cuts fall inside values."""
    record = {
        "nm": "Anastasia Smithers-Lloyd",
        "dob": date(1980, 2, 3),
        "tax": "TX-98765-43210-55555-66666",
    }
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(list[int]).validate_python(record)
    text = str(caught.value)
    assert "'Anastasia Smither..." in text and "...8765-43210-55555-66666'}" in text
    out = Scrubber.for_values(record.values()).scrub(text)
    assert f"'{MASK}...{MASK}'}}" in out, out
    assert "Anastasia" not in out and "Smith" not in out and "98765" not in out


def test_truncation_with_a_unicode_ellipsis_is_masked() -> None:
    value = "Bartholomew Featherstonehaugh"
    text = f"refused {value[:14]}… and …{value[-9:]}"
    assert Scrubber.for_values([value]).scrub(text) == f"refused {MASK}… and …{MASK}"


def test_fragments_shorter_than_three_characters_and_away_from_an_ellipsis_stay() -> None:
    scrubber = Scrubber.for_values(["Bartholomew"])
    assert scrubber.scrub("Ba... ...ew") == "Ba... ...ew"
    assert scrubber.scrub("Bart is short for Bartholomew") == f"Bart is short for {MASK}"


def test_two_character_values_are_masked_as_whole_tokens_only() -> None:
    scrubber = Scrubber.for_values(["QZ", 42])
    assert scrubber.scrub("code='QZ' age=42") == f"code='{MASK}' age={MASK}"
    assert scrubber.scrub("QZ") == MASK
    assert scrubber.scrub("QZX and FIQZ and 420 and v42") == "QZX and FIQZ and 420 and v42"
    assert scrubber.scrub("[QZ, 42.0]") == f"[{MASK}, {MASK}.0]"


def test_one_character_values_are_masked_only_where_rendered_as_a_value() -> None:
    scrubber = Scrubber.for_values(["F", 7])
    assert scrubber.scrub("Owner(sex='F', children=7)") == f"Owner(sex='{MASK}', children={MASK})"
    assert scrubber.scrub('{"sex": "F", "children": 7}') == (
        f'{{"sex": "{MASK}", "children": {MASK}}}'
    )
    ordinary = "F: attempt 7 of 9 failed at owners.7.sex (F)"
    assert scrubber.scrub(ordinary) == ordinary
    assert scrubber.scrub("children=70") == "children=70"


def test_short_values_from_the_json_record_are_masked_too() -> None:
    owner = RECORD["owners"][0]
    text = f"{ACCOUNT.owners[0]!r}"
    out = scrub(text, sensitive_values(owner, ["code", "sex", "children"]))
    assert "'QZ'" not in out and "'F'" not in out and "children=7" not in out


def test_overlapping_and_nested_values_leave_nothing_of_either() -> None:
    scrubber = Scrubber.for_values(["900-12", "12-3456", "3456"])
    assert scrubber.scrub("ssn 900-12-3456 ok") == f"ssn {MASK} ok"
    assert scrubber.scrub("3456 and 900-12") == f"{MASK} and {MASK}"


def test_longest_value_wins_and_repeats_are_all_masked() -> None:
    scrubber = Scrubber.for_values(["Ana", "Ana Lima"])
    assert scrubber.scrub("Ana Lima, Ana, Ana Lima") == f"{MASK}, {MASK}, {MASK}"


@pytest.mark.parametrize(
    ("value", "text", "hidden"),
    [
        (Decimal("12.30"), "Decimal('12.30')", "12.30"),
        (Decimal("12.30"), '{"balance": "12.30"}', "12.30"),
        (Decimal("1E+5"), "Decimal('1E+5')", "1E+5"),
        (Decimal("1E+5"), "balance=100000.", "100000"),
        (Decimal("-0"), "Decimal('-0')", "-0"),
        (datetime(1980, 2, 3, 4, 5, tzinfo=UTC), '"1980-02-03T04:05:00Z"', "1980-02-03"),
        (datetime(1980, 2, 3, 4, 5, tzinfo=UTC), "born 1980-02-03", "1980-02-03"),
        (datetime(1980, 2, 3, 4, 5, tzinfo=UTC), "1980-02-03 04:05:00+00:00", "04:05:00"),
        (
            datetime(1980, 2, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5))),
            repr(datetime(1980, 2, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))),
            "days=-1, seconds=68400",
        ),
        (time(4, 5, 6, tzinfo=UTC), "datetime.time(4, 5, 6, tzinfo=TzInfo(0))", "4, 5, 6"),
        (time(4, 5, 6, tzinfo=UTC), '"04:05:06Z"', "04:05:06"),
        (UUID(int=2**127 + 12345), "UUID('80000000-0000-0000-0000-000000003039')", "3039"),
        (UUID(int=2**127 + 12345), "80000000000000000000000000003039", "3039"),
        (UUID(int=2**127 + 12345), "80000000-0000-0000-0000-000000003039".upper(), "3039"),
        (Tier.GOLD, "<Tier.GOLD: 'gold-tier'>", "GOLD"),
        (Tier.GOLD, "<Tier.GOLD: 'gold-tier'>", "gold-tier"),
        (Tier.GOLD, '{"tier":"gold-tier"}', "gold-tier"),
        (1e21, "rate=1e+21", "1e+21"),
        (1e21, "Decimal('1E+21')", "1E+21"),
        (b"\x00key-bytes", "b'\\x00key-bytes'", "key-bytes"),
    ],
)
def test_typed_values_are_masked_in_their_forms(value: object, text: str, hidden: str) -> None:
    assert hidden in text
    out = Scrubber.for_values([value]).scrub(text)
    assert hidden not in out and MASK in out, out


def test_iso_strings_stand_for_their_typed_forms() -> None:
    """A JSON record holds strings; the model (and its repr) holds the typed value."""
    scrubber = Scrubber.for_values(["2019-07-08T09:10:11+02:00", "1e5", "0042", "08:30"])
    text = "datetime.datetime(2019, 7, 8, 9, 10, 11, tzinfo=TzInfo(7200)) Decimal('1E+5') 42"
    out = scrubber.scrub(text + " time(8, 30)")
    assert not any(c.isdigit() for c in out.replace("7200", "")), out


def test_nothing_to_hide_is_a_no_op() -> None:
    text = "ValueError: nothing here, owners.0.tax_id: 1 of 3..."
    assert not Scrubber.for_values([])
    assert Scrubber.for_values([]).scrub(text) is text
    assert Scrubber.for_values([None, True, "   ", ""]).scrub(text) is text
    scrubber = Scrubber.for_values(["Ana Lima", "900-12-3456", "QZ", 7, date(1980, 2, 3)])
    assert scrubber
    assert scrubber.scrub(text) is text


def test_scrubbing_is_idempotent() -> None:
    scrubber = Scrubber.for_record(ACCOUNT, SENSITIVE)
    once = scrubber.scrub(repr(ACCOUNT))
    assert scrubber.scrub(once) == once


def test_scrub_tree_masks_every_string_in_a_json_value() -> None:
    scrubber = Scrubber.for_values(["900-12-3456"])
    tree = {"a": ["ssn 900-12-3456", 3, None], "b": {"c": "900-12-3456"}}
    assert scrubber.scrub_tree(tree) == {"a": [f"ssn {MASK}", 3, None], "b": {"c": MASK}}


def test_sensitive_leaves_walks_dicts_models_lists_and_aliases() -> None:
    class Holder(BaseModel):
        tax_id: str = Field(alias="taxId")
        nested: Owner

    holder = Holder.model_validate(
        {"taxId": "T-1", "nested": {"name": "Ana", "dob": "1980-02-03", "ssn": "S-1"}}
    )
    assert sensitive_leaves(holder, ["taxId"]) == ["T-1"]
    assert sensitive_leaves(holder, ["tax_id"]) == ["T-1"]
    assert sensitive_leaves(holder, ["nested.dob", "missing.x"]) == [date(1980, 2, 3)]
    whole = sensitive_leaves(holder, ["nested"])
    assert "Ana" in whole and date(1980, 2, 3) in whole and "S-1" in whole
    leaves = sensitive_leaves(ACCOUNT, ["owners.ssn", "tier"])
    assert leaves == ["TAB\tSSN-6666", "900-12-3456", Tier.GOLD]
    assert sensitive_leaves(RECORD, ["owners.dob"]) == ["1980-02-03", "1975-12-31"]


def test_sensitive_values_keeps_its_shape_for_json_records() -> None:
    values = sensitive_values(RECORD, ["owners.code", "owners.sex", "rate", "owners.children"])
    assert values == {"QZ", "F", "0.0375", "7"}


class Applicant(BaseModel):
    email: str
    tax_id: str

    @field_validator("tax_id")
    @classmethod
    def _nine_digits(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError(f"tax id {value} is not nine digits")
        return value


def test_validation_text_names_fields_and_problems_without_inputs() -> None:
    data = {"email": 12345678, "tax_id": "98-765-4321"}
    with pytest.raises(ValidationError) as caught:
        Applicant.model_validate(data)
    text = validation_text(caught.value)
    assert "12345678" not in text and "input_value" not in text
    assert text.startswith("email: Input should be a valid string [type=string_type]; tax_id:")
    # a custom validator's message carries the value: the scrubber takes it out
    assert "98-765-4321" in text
    assert Scrubber.for_values(data.values()).describe(caught.value) == (
        "email: Input should be a valid string [type=string_type]; "
        f"tax_id: Value error, tax id {MASK} is not nine digits [type=value_error]"
    )


def test_validation_text_counts_what_it_does_not_show() -> None:
    class Many(BaseModel):
        a: int
        b: int
        c: int

    with pytest.raises(ValidationError) as caught:
        Many.model_validate({})
    assert validation_text(caught.value, shown=2) == (
        "a: Field required [type=missing]; b: Field required [type=missing]; and 1 more"
    )


def test_strip_input_values_removes_pydantic_inputs_from_any_text() -> None:
    with pytest.raises(ValidationError) as caught:
        Applicant.model_validate({"email": ["x", ", input_type=str]"], "tax_id": "123"})
    wrapped = f"could not build target: {caught.value}"
    out = strip_input_values(wrapped)
    assert "input_value" not in out and "'x'" not in out
    assert "[type=string_type]" in out and out.startswith("could not build target: 1 validation")
    assert strip_input_values("plain text") == "plain text"


def test_error_text_renders_any_exception_without_pydantic_inputs() -> None:
    with pytest.raises(ValidationError) as caught:
        Applicant.model_validate({"email": "a@b.c", "tax_id": "12-3"})
    assert error_text(caught.value) == (
        "tax_id: Value error, tax id 12-3 is not nine digits [type=value_error]"
    )
    assert error_text(RuntimeError(f"wrapped: {caught.value}")).count("12-3") == 1
    assert error_text(KeyError("k")) == "'k'"

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert error_text(Unprintable()) == "<Unprintable: message could not be rendered>"
