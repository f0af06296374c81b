"""Sensitive values of every kind a model allows, raised by a careless plugin in every way a
text can carry them, never reach an output channel: the worker's reason and log lines, the
DLQ's reason attribute and failure history, ``dlq inspect``'s sample and export, and
``reconcile``'s dead-letter reasons (moto in-process)."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from northmigrate import records
from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.message import normalise
from northmigrate.consume.processing import Processor, Status
from northmigrate.dlq.letters import export_view, read_letter, sample_view
from northmigrate.plugin import Migration, MigrationContext, PermanentError
from northmigrate.records import envelope
from northmigrate.records.validation import Validator
from northmigrate.sources import SourceItem


class Tier(Enum):
    GOLD = "gold-tier-secret"
    SILVER = "silver-tier-secret"


class Person(BaseModel):
    pid: str
    name: str
    dob: date
    seen_at: datetime
    balance: Decimal
    tax: str
    ref: uuid.UUID
    tier: Tier
    code: str  # a short value: 1 or 2 characters


class Strict(BaseModel):
    value: int

    @field_validator("value", mode="before")
    @classmethod
    def _whole(cls, v: Any) -> Any:
        return v


SENSITIVE = ("name", "dob", "seen_at", "balance", "tax", "ref", "tier", "code")
HOW: list[str] = []


def careless(record: Person, ctx: MigrationContext) -> None:
    """Raises with the record's values in the ways handlers really do."""
    how = ctx.options["how"]
    if how == "repr":
        raise PermanentError(f"cannot write {record!r}")
    if how == "fields":
        raise RuntimeError(
            f"name={record.name!r} dob={record.dob!r} at={record.seen_at!r} "
            f"balance={record.balance!r} tax={record.tax!r} ref={record.ref!r} "
            f"tier={record.tier!r} code={record.code!r}"
        )
    if how == "json":
        raise KeyError(json.dumps(record.model_dump(mode="json")))
    if how == "pydantic":
        try:
            Strict.model_validate({"value": record.name * 3})
        except ValidationError as exc:
            raise PermanentError(str(exc)) from exc
    raise ValueError(f"{record.tax}/{record.name}/{record.code}")


MIGRATION = Migration(name="people", model=Person, key="pid", handler=careless, sensitive=SENSITIVE)

names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="*"),
    min_size=3,
    max_size=40,
).filter(lambda s: s.strip(" \t\n\r\x0b\x0c") == s and len(s.strip()) >= 3)


@st.composite
def people(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "pid": "P-1",
        "name": draw(names | st.sampled_from(["TAB\tSSN-6666", 'O\'Brien "Bo"', "Zoë Ñandú"])),
        "dob": draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 1, 1))).isoformat(),
        "seen_at": draw(
            st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1))
        )
        .replace(tzinfo=UTC)
        .isoformat(),
        "balance": str(
            draw(
                st.decimals(min_value=Decimal("100.01"), max_value=Decimal("1000000000"), places=2)
            )
        ),
        "tax": draw(st.from_regex(r"\A\d{3}-\d{2}-\d{4}\Z")),
        "ref": str(draw(st.uuids())),
        "tier": draw(st.sampled_from([t.value for t in Tier])),
        "code": draw(st.sampled_from(["QZ", "K", "7Q"])),
    }


def forms(record: dict[str, Any]) -> list[str]:
    """What must never appear: the values as the source and the model spell them."""
    model = Person.model_validate(record)
    out: list[str] = []
    for name in SENSITIVE:
        raw, typed = record[name], getattr(model, name)
        for value in {raw, typed}:
            for text in (str(value), repr(value), json.dumps(str(value))[1:-1]):
                if len(str(raw)) >= 3:
                    out.append(text)
    return [f for f in out if len(f) >= 3]


def short_codes(record: dict[str, Any]) -> list[str]:
    """A short value rendered as a value (quoted or assigned) must not show either."""
    code = record["code"]
    return [f"'{code}'", f'"{code}"', f"code={code!r}"]


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    return AwsClients()


def channels(aws: AwsClients, record: dict[str, Any], how: str, caplog: Any) -> str:
    """Everything a dead letter of this record shows anyone, without --show-pii."""
    sqs = aws.client("sqs")
    main = sqs.create_queue(QueueName=f"main-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    processor = Processor(
        MIGRATION,
        clients=aws,
        options={"how": how},
        dlq_url=dlq,
        max_receive_count=1,
        queue_url=main,
    )
    body = envelope.Envelope("people", "P-1", records.loads(json.dumps(record))).to_body()
    with caplog.at_level(logging.DEBUG, logger="northmigrate"):
        outcome = processor.process(
            {"MessageId": "m", "ReceiptHandle": "r", "Body": body, "Attributes": {}}
        )
    assert outcome.status is Status.DEAD_LETTERED
    [dead] = sqs.receive_message(
        QueueUrl=dlq, MessageAttributeNames=["All"], AttributeNames=["All"]
    )["Messages"]
    letter = read_letter(normalise(dead))
    sample = sample_view(letter, SENSITIVE, False)
    export = export_view(letter, SENSITIVE, False)
    # Only what can carry record data: message ids, timestamps and SQS's own attributes
    # (which may hold "000" as a name may) are not the record's.
    return "\n".join(
        [
            outcome.reason or "",
            dead["MessageAttributes"][envelope.ATTR_REASON]["StringValue"],
            *(f["reason"] for f in json.loads(dead["Body"]).get("failures", [])),
            sample["reason"],
            json.dumps(sample["body"], default=str),
            export["reason"],
            json.dumps(export["body"], default=str),
            *(
                str(value.get("StringValue", ""))
                for name, value in export["message_attributes"].items()
                if name != envelope.ATTR_ORIGIN
            ),
            *(entry.getMessage() for entry in caplog.records),
        ]
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(record=people(), how=st.sampled_from(["repr", "fields", "json", "pydantic", "plain"]))
def test_no_sensitive_form_reaches_a_dead_letters_channels(
    aws: AwsClients, caplog: Any, record: dict[str, Any], how: str
) -> None:
    caplog.clear()
    shown = channels(aws, record, how, caplog)
    assert "people" in shown or "***" in shown  # the channels were really read
    leaked = [f for f in forms(record) + short_codes(record) if f in shown]
    assert leaked == [], (how, leaked)


def test_the_control_shows_the_values_with_show_pii(aws: AwsClients, caplog: Any) -> None:
    record = {
        "pid": "P-1",
        "name": "Ada Lovelace",
        "dob": "1980-02-03",
        "seen_at": "2026-01-02T03:04:05+00:00",
        "balance": "123.45",
        "tax": "123-45-6789",
        "ref": str(uuid.UUID(int=7)),
        "tier": "gold-tier-secret",
        "code": "QZ",
    }
    shown = channels(aws, record, "repr", caplog)
    assert "123-45-6789" not in shown and "datetime.date(1980, 2, 3)" not in shown
    sqs = aws.client("sqs")
    url = next(u for u in sqs.list_queues()["QueueUrls"] if "/dlq-" in u)
    sqs.purge_queue(QueueUrl=url)
    body = envelope.Envelope("people", "P-1", record).to_body()
    sqs.send_message(QueueUrl=url, MessageBody=body)
    [dead] = sqs.receive_message(QueueUrl=url)["Messages"]
    with_pii = json.dumps(sample_view(read_letter(normalise(dead)), SENSITIVE, True))
    assert "123-45-6789" in with_pii


@settings(max_examples=40, deadline=None)
@given(record=people())
def test_a_model_validator_that_raises_any_type_is_a_scrubbed_rejection(
    record: dict[str, Any],
) -> None:
    class Lookup(Person):
        @field_validator("tax")
        @classmethod
        def _known(cls, v: str) -> str:
            raise KeyError(f"unknown tax id {v!r}")

    migration = Migration(
        name="people", model=Lookup, key="pid", handler=careless, sensitive=SENSITIVE
    )
    checked = Validator(migration, max_message_size=262_144).check(
        SourceItem(3, text=json.dumps(record))
    )
    assert checked.kind == "invalid" and checked.rejection is not None
    assert checked.rejection.line == 3
    assert "KeyError" in checked.rejection.error
    assert record["tax"] not in checked.rejection.error
