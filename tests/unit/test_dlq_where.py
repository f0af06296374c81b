"""--where: parsing, and which dead letters each expression selects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.sqs.message import InMessage, normalise
from northmigrate.dlq.letters import Letter, read_letter
from northmigrate.dlq.where import matches, parse_all, parse_where
from northmigrate.errors import InputError
from northmigrate.records import envelope


def letter(record: dict[str, Any] | None, reason: str | None = None, body: str | None = None):
    attrs: dict[str, Any] = {}
    if reason is not None:
        attrs[envelope.ATTR_REASON] = {"DataType": "String", "StringValue": reason}
        attrs[envelope.ATTR_FAILURE_KIND] = {"DataType": "String", "StringValue": "permanent"}
    if body is None:
        assert record is not None
        body = envelope.Envelope("m", str(record.get("id")), record).to_body()
    return read_letter(
        normalise(
            {"MessageId": "mid-1", "ReceiptHandle": "h", "Body": body, "MessageAttributes": attrs}
        )
    )


REC = {"id": "ACC-17", "country": "CA", "flag": True, "owners": [{"n": "a"}, {"n": "b"}], "x": None}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("reason~ValueError", True),
        ("reason~^ValueError: bad$", True),
        ("reason~KeyError", False),
        ("reason!~KeyError", True),
        ("reason=ValueError: bad", True),
        ("reason!=ValueError: bad", False),
        ("kind=permanent", True),
        ("record_id=ACC-17", True),
        ("record_id=ACC-18", False),
        ("message_id=mid-1", True),
        ("record.country=CA", True),
        ("record.country!=CA", False),
        ("record.country=US", False),
        ("record.flag=true", True),
        ("record.x=null", True),
        ("record.owners.n=b", True),
        ("record.owners.n!=b", False),
        ("record.owners.n=c", False),
        ("record.missing=1", False),
        ("record.missing!=1", True),
        ("record.country~^C", True),
    ],
)
def test_each_expression(expr: str, expected: bool) -> None:
    assert matches(letter(REC, "ValueError: bad"), [parse_where(expr)]) is expected


def test_all_expressions_must_hold() -> None:
    subject = letter(REC, "ValueError: bad")
    assert matches(subject, parse_all(["reason~Value", "record.country=CA"]))
    assert not matches(subject, parse_all(["reason~Value", "record.country=US"]))
    assert matches(subject, [])


def test_a_message_sqs_moved_itself_has_reason_unknown() -> None:
    subject = letter(REC)
    assert matches(subject, [parse_where("reason=unknown")])
    assert not matches(subject, [parse_where("kind=permanent")])


def test_raw_bodies_filter_on_their_json_or_not_at_all() -> None:
    bare = letter(None, body=json.dumps({"country": "CA"}))
    assert matches(bare, [parse_where("record.country=CA")])
    text = letter(None, body="not json")
    assert not matches(text, [parse_where("record.country=CA")])
    assert matches(text, [parse_where("reason=unknown")])


@pytest.mark.parametrize("expr", ["country=CA", "reason", "=x", "record.=x", "reason~(unclosed"])
def test_bad_expressions_are_usage_errors(expr: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_where(expr)
    assert caught.value.exit_code == 2


# Regular expressions run on a linear-time engine (RE2): no pattern can backtrack for ages.
PATHOLOGICAL = ["^(a+)+$", "(a|aa)+$", "(a*)*b", "(.*a){25}x", "^(\\w+\\s?)*$"]


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_catastrophic_patterns_finish(pattern: str) -> None:
    # Python's backtracking engine needs about 2**10000 steps for some of these (27 a's
    # already took 10 s); RE2 answers in time linear in the text.
    subject = letter({**REC, "notes": "a" * 10_000 + "!"}, "ValueError: " + "a" * 10_000 + "!")
    for field in ("record.notes", "reason"):
        assert not matches(subject, [parse_where(f"{field}~{pattern}")])
        assert matches(subject, [parse_where(f"{field}!~{pattern}")])


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence"),
        ("(?=a)b", "invalid perl operator"),
        ("(?<!a)b", "invalid perl operator"),
        ("a{1001}", "invalid repetition size"),
        ("(unclosed", "missing )"),
    ],
)
def test_patterns_the_engine_cannot_take_are_usage_errors(pattern: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_where(f"reason~{pattern}")
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert reason in message and "b'" + reason not in message
    assert "backreferences" in message or "RE2" in message


def test_unsupported_pattern_is_one_error_line_from_the_cli(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from northmigrate.cli.app import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NORTHMIGRATE_CONFIG", raising=False)
    code = run(["dlq", "redrive", "--where", "reason~(a)\\1"])
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --where"), err
    assert "invalid escape sequence" in lines[0]


def test_text_python_cannot_encode_still_matches() -> None:
    # a lone surrogate (valid in JSON as "\ud800") cannot be encoded as UTF-8
    subject = letter({**REC, "notes": "x\ud800y"}, "Error: \udfff")
    assert matches(subject, [parse_where("record.notes~^x.y$")])
    assert matches(subject, [parse_where("reason~Error")])
    assert not matches(subject, [parse_where("record.notes!~x")])


def test_regex_searches_anywhere_in_the_text() -> None:
    subject = letter({**REC, "notes": "Café 42\nsecond line"}, "ValueError: bad")
    for expr in ["record.notes~fé", "record.notes~(?i)CAFÉ", "record.notes~\\d+ ?$|42"]:
        assert matches(subject, [parse_where(expr)]), expr
    assert not matches(subject, [parse_where("record.notes~^second")])  # ^: start of the text
    assert matches(subject, [parse_where("record.notes~(?m)^second")])


def test_where_error_kind_picks_the_letters_of_one_kind() -> None:
    condition = parse_where("error_kind=outage")
    down = Letter(InMessage("m1", "r1", "{}", 1), None, False, None, None, "exhausted", "outage")
    bug = Letter(InMessage("m2", "r2", "{}", 1), None, False, None, None, "exhausted", "record")
    before = Letter(InMessage("m3", "r3", "{}", 1), None, False, None, None, "permanent")
    assert [condition.holds(x) for x in (down, bug, before)] == [True, False, False]
