"""--where: parsing, and which dead letters each expression selects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from northmigrate import envelope
from northmigrate.dlq.letters import read_letter
from northmigrate.dlq.where import matches, parse_all, parse_where
from northmigrate.errors import InputError
from northmigrate.processing import normalise


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
