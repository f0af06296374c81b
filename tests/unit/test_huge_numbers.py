"""A huge number in a sensitive field, on every path: a clear rejection or a mask, in bounded
memory and time, never ``Overflow`` or a rendering of the number's digits.

The class: huge exponents (``1e999999999``), tiny ones (``1e-999999999``), negative ones,
long digit strings, as JSON numbers or as strings that read as numbers, at the top level or
nested in objects and lists. Memory and time are bounded by running the paths in a child
process with an address-space limit (a number rendered in full needs gigabytes), not by a
timer.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from northmigrate import records
from northmigrate.redact import MASK, Scrubber
from northmigrate.redact.forms import renderings

HUGE = [
    "1e999999999",
    "-1e999999999",
    "1E+999999999",
    "1e-999999999",
    "-2.5e-999999999",
    "1.5e1000000",
    "1e1000000",
    "7e4301",
    "1" + "0" * 4400 + ".5",
    "0." + "0" * 4400 + "1",
    "-" + "9" * 4400,
]
MEMORY_LIMIT = 1 << 30  # a child process: one such number rendered in full needs far more


def nested(number: str) -> list[str]:
    """The number as a record would carry it: at the top, nested, in a list, as a string."""
    return [
        f'{{"amount": {number}, "note": 5}}',
        f'{{"owner": {{"amount": {number}}}, "note": "x"}}',
        f'{{"amounts": [1, {number}], "note": "x"}}',
        f'{{"amount": "{number}", "note": 5}}',
    ]


@pytest.mark.parametrize("number", HUGE)
def test_loads_refuses_a_number_too_large_to_convert_with_a_reason_holding_no_digit(
    number: str,
) -> None:
    with pytest.raises(records.RecordSyntaxError) as caught:
        records.loads(f'{{"amount": {number}}}')
    reason = str(caught.value)
    assert "number" in reason
    assert number.lstrip("-")[:3] not in reason.replace("4300", "")


@pytest.mark.parametrize("number", ["1e4299", "-1e-4299", "1" + "0" * 4000 + ".25", "12.30"])
def test_loads_keeps_every_number_within_the_bound_exactly(number: str) -> None:
    assert records.loads(f'{{"amount": {number}}}') == {"amount": Decimal(number)}


@given(
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers(min_value=0, max_value=40),
    st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_no_rendering_of_any_decimal_is_longer_than_its_own_text(
    lead: int, exponent: int, digits: int, negative: bool
) -> None:
    value = Decimal(f"{'-' if negative else ''}{lead}{'7' * digits}e{exponent}")
    forms = renderings(value)
    bound = max(64, len(str(value)) + 2)
    assert forms and all(len(form) <= bound for form in forms)
    text = f"amount={value} failed"
    assert Scrubber.for_values([value]).scrub(text) == f"amount={MASK} failed"


@pytest.mark.parametrize("number", HUGE)
def test_a_string_that_reads_as_a_huge_number_is_masked_not_rendered(number: str) -> None:
    scrubber = Scrubber.for_record({"amount": number}, ["amount"])
    assert scrubber.scrub(f"bad amount {number!r}") == f"bad amount '{MASK}'"
    assert all(len(form) <= max(64, len(number) + 2) for form in renderings(number))


class Account(BaseModel):
    amount: Decimal | int | float | str
    note: str = ""


class Owner(BaseModel):
    amount: Decimal


class Nested(BaseModel):
    owner: Owner | None = None
    amounts: list[Decimal] = []
    note: str = ""


CHILD = textwrap.dedent(
    """
    import json, sys
    from decimal import Decimal
    from typing import Any
    from pydantic import BaseModel
    from northmigrate import records
    from northmigrate.dlq.letters import export_view, read_letter, sample_view
    from northmigrate.plugin import Migration
    from northmigrate.redact import Scrubber, sensitive_leaves
    from northmigrate.records.item import SourceItem
    from northmigrate.aws.sqs.message import InMessage
    from northmigrate.records.validation import Validator

    class Owner(BaseModel):
        amount: int

    class Record(BaseModel):
        id: str = "R1"
        amount: int | None = None
        owner: Owner | None = None
        amounts: list[int] = []
        note: str = ""

    migration = Migration(
        name="m", model=Record, key="id", handler=lambda r, c: None,
        sensitive=("amount", "owner.amount", "amounts"),
    )
    validator = Validator(migration, max_message_size=262_144)
    out = []
    for n, text in enumerate(json.loads(sys.stdin.read())):
        checked = validator.check(SourceItem(line=n + 1, text=text))
        rejection = checked.rejection
        out.append(["validate", checked.kind, rejection.error if rejection else ""])
        # A dead letter written before the bound (or by another producer) holds it as is.
        body = '{"northmigrate": 1, "migration": "m", "record_id": "R1", "record": ' + text + "}"
        letter = read_letter(InMessage("m-1", "h", body, 1))
        sample = sample_view(letter, migration.sensitive, False)
        export = export_view(letter, migration.sensitive, False)
        out.append(["inspect", json.dumps(sample, default=str), ""])
        out.append(["export", json.dumps(export, default=str), ""])
        scrubber = Scrubber.for_record(letter.record or {}, migration.sensitive)
        leaves = sensitive_leaves(letter.record or {}, migration.sensitive)
        told = " ".join(f"{leaf} {leaf!r}" for leaf in leaves if not isinstance(leaf, int))
        out.append(["scrub", scrubber.scrub("failed: " + told), told])
    print(json.dumps(out))
    """
)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_bounded(texts: list[str]) -> list[list[str]]:
    """The validate, inspect, export and scrub paths over ``texts``, in a child process that
    cannot take more than ``MEMORY_LIMIT`` of address space."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=300,  # a hang, not a measure: the paths take well under a second
        preexec_fn=_limit_memory,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: Any = json.loads(done.stdout)
    return list(result)


def test_every_path_rejects_or_masks_any_huge_number_in_bounded_memory() -> None:
    texts = [text for number in HUGE for text in nested(number)]
    results = run_bounded(texts)
    assert len(results) == 4 * len(texts)
    for number, (validated, inspected, exported, scrubbed) in zip(
        [n for n in HUGE for _ in range(4)], zip(*[iter(results)] * 4, strict=True), strict=True
    ):
        digits = number.lstrip("-").replace("0.", "")[:6]
        assert validated[1] == "invalid", validated
        assert "Overflow" not in validated[2] and digits not in validated[2]
        for view in (inspected[1], exported[1]):
            assert "Overflow" not in view
            assert number not in view and number.upper() not in view
        assert scrubbed[2] and MASK in scrubbed[1]
        for word in scrubbed[2].split():
            assert word not in scrubbed[1], word


# -- the worker's and the Lambda handler's path (moto in-process) ---------------------------


def letter_body(number: str) -> str:
    """An envelope as enqueue wrote it before the bound, or as any producer may."""
    record = f'{{"id": "R1", "amount": {number}, "note": "x"}}'
    return f'{{"northmigrate": 1, "migration": "m", "record_id": "R1", "record": {record}}}'


class Plain(BaseModel):
    id: str
    amount: int
    note: str


def test_the_worker_dead_letters_any_huge_number_once_with_a_reason(mocked_aws: None) -> None:
    from northmigrate.aws.clients import AwsClients
    from northmigrate.consume.processing import Processor, Status
    from northmigrate.plugin import Migration

    handled: list[Any] = []
    migration = Migration(
        name="m",
        model=Plain,
        key="id",
        handler=lambda record, ctx: handled.append(record),
        sensitive=("amount",),
    )
    clients = AwsClients()
    sqs = clients.client("sqs")
    main = sqs.create_queue(QueueName="huge-main")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="huge-dlq")["QueueUrl"]
    processor = Processor(
        migration, clients=clients, options={}, dlq_url=dlq, max_receive_count=3, queue_url=main
    )
    for n, number in enumerate(HUGE):
        message = {"MessageId": f"m{n}", "ReceiptHandle": "r", "Body": letter_body(number)}
        outcome = processor.process(message)
        assert outcome.status is Status.DEAD_LETTERED and outcome.delete, number
        assert outcome.reason is not None and "number" in outcome.reason
        assert "Overflow" not in outcome.reason and number[:4] not in outcome.reason
    assert handled == []
    got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    assert len(got["Messages"]) == min(10, len(HUGE))


def test_the_lambda_handler_dead_letters_a_huge_sensitive_number(mocked_aws: None) -> None:
    from unit.test_lambda_handler import dead_letters, record, runtime_for, sqs_record

    from northmigrate.consume import lambda_handler as aws_lambda

    rt = runtime_for("huge")
    bodies = []
    for n, number in enumerate(["1e999999999", "-1e-999999999", "7e4301"]):
        rec = json.dumps(record(n + 1))
        rec = rec.replace('"tax_id": "', f'"tax_id": {number}, "x": "', 1)
        bodies.append(
            f'{{"northmigrate": 1, "migration": "onboarding-v2", "record_id": "APP-{n:06d}", '
            f'"record": {rec}}}'
        )
    response = aws_lambda.handle({"Records": [sqs_record(b) for b in bodies]}, rt)
    assert response == {"batchItemFailures": []}  # none is released to come back
    reasons = list(dead_letters(rt).values())
    assert len(reasons) == 3
    assert all("number" in r and "Overflow" not in r and "999" not in r for r in reasons)
