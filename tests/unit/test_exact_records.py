"""Exactly the record that left: one parse path, every number to the last digit.

What ``validate`` accepted is what the worker's (and the Lambda handler's) plugin gets, what
``verify`` checks and what every hash is made of: from JSONL, a ``.json`` array, CSV and
DynamoDB items, through the envelope, a retry's copy, a dead letter and a redrive.
"""

from __future__ import annotations

import io
import json
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from northmigrate import records
from northmigrate.aws.clients import AwsClients
from northmigrate.consume.processing import Processor, Status
from northmigrate.dlq.mover import redriven_body
from northmigrate.examples import onboarding
from northmigrate.plugin import Migration, MigrationContext
from northmigrate.records import envelope
from northmigrate.records.sample import generate
from northmigrate.records.validation import Validator
from northmigrate.sources import SourceItem
from northmigrate.sources.dynamodb import plain
from northmigrate.sources.files import read_csv, read_json_array, read_jsonl


class Payment(BaseModel):
    id: str
    amount: Decimal
    ratio: float = 0.0
    count: int = 0
    parts: list[Decimal] = []
    extra: dict[str, Any] = {}


SEEN: list[BaseModel] = []


def keep(record: BaseModel, ctx: MigrationContext) -> None:
    SEEN.append(record)


PAYMENTS = Migration(name="payments", model=Payment, key="id", handler=keep)

TRICKY = [
    "12345678901234567.89",
    "0.10000000000000000555",
    "1E+2",
    "1e-7",
    "100.00",
    "-0.0",
    "-0",
    "0E-10",
    "123456789012345678901234567890",
    "-9.999999999999999999999999999E+300",
]


def validated(text: str, migration: Migration[Any] = PAYMENTS) -> tuple[BaseModel, str]:
    """The model validate accepts for one JSONL line, and the body enqueue would send."""
    checked = Validator(migration, max_message_size=262_144).check(SourceItem(1, text=text))
    assert checked.kind == "eligible", checked.rejection
    assert checked.record is not None and checked.message is not None
    return checked.record, checked.message.body


def handled(body: str, clients: AwsClients, migration: Migration[Any] = PAYMENTS) -> BaseModel:
    """The model the worker's handler gets for a message body."""
    sqs = clients.client("sqs")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    SEEN.clear()
    processor = Processor(migration, clients=clients, options={}, dlq_url=dlq, max_receive_count=3)
    message = {"MessageId": "m", "ReceiptHandle": "r", "Body": body, "Attributes": {}}
    assert processor.process(message).status is Status.SUCCEEDED
    [record] = SEEN
    return record


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    return AwsClients()


@pytest.mark.parametrize("number", TRICKY)
def test_a_jsonl_amount_reaches_the_handler_to_the_last_digit(aws: AwsClients, number: str) -> None:
    line = f'{{"id":"d1","amount":{number},"parts":[{number}],"extra":{{"n":{number}}}}}'
    record, body = validated(line)
    assert record.amount == Decimal(number)  # type: ignore[attr-defined]
    assert record.amount.as_tuple() == Decimal(number).as_tuple()  # type: ignore[attr-defined]
    got = handled(body, aws)
    assert got == record
    assert got.amount.as_tuple() == Decimal(number).as_tuple()  # type: ignore[attr-defined]
    assert got.extra["n"] == Decimal(number)  # type: ignore[attr-defined]


@pytest.mark.parametrize("number", ["12345678901234567.89", "0.10000000000000000555", "1E+2"])
def test_the_numbers_of_the_issue_arrive_unrounded(aws: AwsClients, number: str) -> None:
    _, body = validated(f'{{"id":"d1","amount":{number}}}')
    assert str(handled(body, aws).amount) == number  # type: ignore[attr-defined]


def test_a_json_array_source_keeps_every_digit() -> None:
    text = "[\n" + ",\n".join(f'{{"id":"a{i}","amount":{n}}}' for i, n in enumerate(TRICKY)) + "\n]"
    validator = Validator(PAYMENTS, max_message_size=262_144)
    amounts = []
    for item in read_json_array(io.BytesIO(text.encode())):
        checked = validator.check(item)
        assert checked.record is not None, checked.rejection
        amounts.append(checked.record.amount.as_tuple())  # type: ignore[attr-defined]
    assert amounts == [Decimal(n).as_tuple() for n in TRICKY]


def test_a_csv_json_cell_keeps_every_digit(aws: AwsClients) -> None:
    text = 'id,amount,parts\nc1,12345678901234567.89,"[0.10000000000000000555, 1E+2]"\n'
    [item] = list(read_csv(io.BytesIO(text.encode())))
    checked = Validator(PAYMENTS, max_message_size=262_144).check(item)
    assert checked.record is not None and checked.message is not None
    assert [str(p) for p in checked.record.parts] == ["0.10000000000000000555", "1E+2"]  # type: ignore[attr-defined]
    assert handled(checked.message.body, aws) == checked.record


def test_a_dynamodb_item_keeps_every_digit(aws: AwsClients) -> None:
    item = plain({"id": "t1", "amount": Decimal("12345678901234567.89"), "count": Decimal("7")})
    checked = Validator(PAYMENTS, max_message_size=262_144).check(SourceItem(1, data=item))
    assert checked.record is not None and checked.message is not None
    assert str(checked.record.amount) == "12345678901234567.89"  # type: ignore[attr-defined]
    assert handled(checked.message.body, aws) == checked.record


def test_history_added_to_an_envelope_changes_no_number() -> None:
    line = '{"id":"d1","amount":12345678901234567.89,"extra":{"f":0.10000000000000000555}}'
    _, body = validated(line)
    entry = envelope.redrive_entry(source="dlq", destination="main")
    for rewritten in (
        redriven_body(body, entry),
        envelope.with_history(body, "failures", entry, attempts=2),
    ):
        record = json.loads(rewritten, parse_float=Decimal)["record"]
        assert record["amount"] == Decimal("12345678901234567.89")
        assert str(record["extra"]["f"]) == "0.10000000000000000555"


def test_numbers_that_cannot_be_read_exactly_are_rejected_with_a_reason() -> None:
    validator = Validator(PAYMENTS, max_message_size=262_144)
    for text, reason in [
        ('{"id":"n1","amount":NaN}', "NaN is not a JSON number"),
        ('{"id":"n2","amount":Infinity}', "Infinity is not a JSON number"),
        ('{"id":"n3","amount":' + "9" * 5000 + "}", "more than 4300 digits"),
    ]:
        checked = validator.check(SourceItem(7, text=text))
        assert checked.kind == "invalid" and checked.rejection is not None
        assert reason in checked.rejection.error
        assert checked.rejection.line == 7


# -- the property ------------------------------------------------------------------------


def _spellings(value: Decimal) -> st.SearchStrategy[str]:
    """Ways a JSON file may write this number."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    sci = f"{'-' if sign else ''}{mantissa}E{exponent:+d}"
    return st.sampled_from([str(value), sci, sci.lower(), f"{value:f}"])


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.adjusted()) < 300
)
numbers = decimals.flatmap(_spellings) | st.integers(-(10**40), 10**40).map(str)
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)


@st.composite
def record_texts(draw: st.DrawFn) -> str:
    amount = draw(numbers)
    parts = draw(st.lists(numbers, max_size=3))
    key = draw(texts)
    nested = draw(numbers)
    label = json.dumps(draw(texts))
    return (
        f'{{"id":{label},"amount":{amount},"parts":[{",".join(parts)}],'
        f'"extra":{{{json.dumps(key)}:[{nested},{{"x":{nested}}}]}}}}'
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=record_texts())
def test_the_handler_gets_the_model_validate_accepted(text: str) -> None:
    """For any record the model accepts: the same model in the worker, field by field."""
    record, body = validated(text)
    # The worker's side, without SQS: the envelope read back as the Processor reads it.
    env = envelope.parse(body)
    again = records.build(Payment, env.record)
    assert again == record
    for name in ("amount", "parts"):
        left, right = getattr(again, name), getattr(record, name)
        flat_left = left if isinstance(left, list) else [left]
        flat_right = right if isinstance(right, list) else [right]
        assert [d.as_tuple() for d in flat_left] == [d.as_tuple() for d in flat_right]
    # And after a retry's or a redrive's rewrite of the body.
    entry = envelope.redrive_entry(source="a", destination="b")
    assert records.build(Payment, envelope.parse(redriven_body(body, entry)).record) == record


def test_reconcile_hash_is_the_same_in_both_paths(aws: AwsClients) -> None:
    """``"ownership_pct": 100.00`` hashed by enqueue and by the worker: the same digest."""
    raw = json.dumps(next(iter(generate(1, seed=3))))
    raw = raw.replace('"ownership_pct": "100.00"', '"ownership_pct": 100.00')
    assert '"ownership_pct": 100.00' in raw
    ctx = MigrationContext(options={"table": "t"}, aws=aws)
    onboarding.setup(ctx)
    eligible_raw = raw.replace('"status": "submitted"', '"status": "approved"')
    record, body = validated(eligible_raw, onboarding.migration)
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    processor = Processor(
        onboarding.migration, clients=aws, options={"table": "t"}, dlq_url=dlq, max_receive_count=3
    )
    message = {"MessageId": "m", "ReceiptHandle": "r", "Body": body, "Attributes": {}}
    assert processor.process(message).status is Status.SUCCEEDED
    assert onboarding.verify(record, ctx)  # type: ignore[arg-type]
    assert onboarding.verify_batch([record], ctx) == [True]  # type: ignore[list-item]


def test_a_jsonl_line_with_a_character_sqs_refuses_is_sent_escaped() -> None:
    line = '{"id":"u1","amount":1.10,"extra":{"t":"a\uffffb"}}'
    record, body = validated(line)
    assert "\uffff" not in body and "\\uffff" in body
    assert records.build(Payment, envelope.parse(body).record) == record


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_every_line_ending_gives_one_item_a_record(ending: str) -> None:
    lines = [f'{{"id":"e{i}","amount":{i}.50}}' for i in range(5)]
    items = list(read_jsonl(io.BytesIO(ending.join(lines).encode())))
    assert [(item.line, item.text) for item in items] == list(enumerate(lines, start=1))
    assert all(c in string.printable for item in items for c in item.text or "")
