"""The per-record path shared by the worker and the Lambda handler (moto in-process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
import pydantic
import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.message import attributes_size, normalise
from northmigrate.consume.processing import Processor, Status
from northmigrate.plugin import Migration, MigrationContext, PermanentError
from northmigrate.records import envelope


class Item(BaseModel):
    item_id: str
    secret: str = ""
    mode: str = "ok"


CALLS: list[tuple[Item, MigrationContext]] = []


def handle(record: Item, ctx: MigrationContext) -> None:
    CALLS.append((record, ctx))
    if record.mode == "boom":
        raise ConnectionError(f"service down while writing {record.secret}")
    if record.mode == "permanent":
        raise PermanentError(f"refused {record.item_id}: secret {record.secret} is malformed")


MIGRATION = Migration(
    name="items", model=Item, key="item_id", handler=handle, sensitive=("secret",)
)
NOW = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    CALLS.clear()
    return AwsClients()


def make(clients: AwsClients, *, fifo: bool = False, sqs: Any = None) -> tuple[Processor, str]:
    suffix = ".fifo" if fifo else ""
    attrs = {"FifoQueue": "true"} if fifo else {}
    dlq = clients.client("sqs").create_queue(QueueName=f"dlq{suffix}", Attributes=attrs)
    processor = Processor(
        MIGRATION,
        clients=clients,
        options={"table": "t"},
        dlq_url=dlq["QueueUrl"],
        max_receive_count=3,
        fifo=fifo,
        sqs=sqs,
        clock=lambda: NOW,
    )
    return processor, str(dlq["QueueUrl"])


def body(record: dict[str, Any], migration: str = "items") -> str:
    return envelope.Envelope(
        migration=migration, record_id=str(record.get("item_id", "?")), record=record
    ).to_body()


def message(text: str, count: int = 1, **attrs: Any) -> dict[str, Any]:
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": text,
        "Attributes": {"ApproximateReceiveCount": str(count), **attrs},
        "MessageAttributes": envelope.attributes("items", "A-1"),
    }


def dead_letters(clients: AwsClients, url: str) -> list[dict[str, Any]]:
    got = clients.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    )
    return list(got.get("Messages", []))


def test_both_message_shapes_normalise_alike() -> None:
    receive = message("b", 4)
    lambda_record = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": "b",
        "attributes": {"ApproximateReceiveCount": "4"},
        "messageAttributes": {
            name: {
                "stringValue": value["StringValue"],
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in envelope.attributes("items", "A-1").items()
        },
        "eventSource": "aws:sqs",
    }
    assert normalise(receive) == normalise(lambda_record)
    assert normalise(lambda_record).attempt == 4


def test_a_valid_record_reaches_the_handler_with_its_context(aws: AwsClients) -> None:
    processor, _ = make(aws)
    outcome = processor.process(message(body({"item_id": "A-1"}), 2))
    assert outcome.status is Status.SUCCEEDED and outcome.delete
    record, ctx = CALLS[0]
    assert record == Item(item_id="A-1")
    assert (ctx.attempt, ctx.message_id, ctx.options["table"]) == (2, "m-1", "t")
    assert ctx.aws is aws


def test_a_failure_before_the_last_attempt_is_a_retry(aws: AwsClients) -> None:
    processor, dlq = make(aws)
    outcome = processor.process(
        message(body({"item_id": "A-1", "mode": "boom", "secret": "s3cr3t"}), 2)
    )
    assert outcome.status is Status.RETRY and not outcome.delete
    assert outcome.reason == "ConnectionError: service down while writing ***"
    assert dead_letters(aws, dlq) == []


def test_the_last_attempt_moves_the_message_to_the_dlq_with_its_reason(aws: AwsClients) -> None:
    processor, dlq = make(aws)
    record = {"item_id": "A-1", "mode": "boom", "secret": "s3cr3t", "extra": 1}
    outcome = processor.process(message(body(record), 3))
    assert outcome.status is Status.DEAD_LETTERED and outcome.delete
    [dead] = dead_letters(aws, dlq)
    data = json.loads(dead["Body"])
    assert data["record"] == record  # the record travels unchanged (unknown keys too)
    assert data["failures"] == [
        {
            "kind": "exhausted",
            "error_class": "ConnectionError",
            "reason": "ConnectionError: service down while writing ***",
            "attempt": 3,
            "migration": "items",
            "version": "1",
            "at": "2026-11-27T01:02:03.000000Z",
            "message_id": "m-1",
            "error_kind": "outage",
        }
    ]
    attrs = dead["MessageAttributes"]
    assert attrs[envelope.ATTR_RECORD_ID]["StringValue"] == "A-1"  # kept
    assert attrs[envelope.ATTR_REASON]["StringValue"] == data["failures"][0]["reason"]
    assert attrs[envelope.ATTR_FAILURE_KIND]["StringValue"] == "exhausted"
    assert attrs[envelope.ATTR_ERROR_KIND]["StringValue"] == "outage"  # a ConnectionError
    assert "s3cr3t" not in json.dumps([data["failures"], attrs])


def test_permanent_error_is_dead_lettered_at_once(aws: AwsClients) -> None:
    processor, dlq = make(aws)
    earlier = envelope.failure(
        kind="exhausted",
        error_class="X",
        reason="X: old",
        attempt=5,
        migration="items",
        version="1",
    )
    env = envelope.Envelope(
        migration="items",
        record_id="A-2",
        record={"item_id": "A-2", "mode": "permanent", "secret": "s3cr3t"},
        failures=[earlier],
    )
    outcome = processor.process(message(env.to_body(), 1))
    assert outcome.status is Status.DEAD_LETTERED
    assert outcome.kind == "permanent"
    [dead] = dead_letters(aws, dlq)
    failures = json.loads(dead["Body"])["failures"]
    assert [f["reason"] for f in failures] == [
        "X: old",
        "PermanentError: refused A-2: secret *** is malformed",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json at all", "EnvelopeError: message body is not JSON"),
        ('{"item_id": "A-1"}', "EnvelopeError: message body is not a northmigrate envelope"),
        (
            body({"item_id": "A-1"}, migration="other"),
            "ForeignMessage: an envelope of migration 'other', not 'items'",
        ),
        (body({"id": "A-1", "secret": "s3cr3t"}), "ValidationError: item_id: Field required"),
    ],
)
def test_unreadable_foreign_and_invalid_messages_are_dead_lettered(
    aws: AwsClients, text: str, reason: str
) -> None:
    processor, dlq = make(aws)
    outcome = processor.process(message(text, 1))
    assert outcome.status is Status.DEAD_LETTERED
    assert outcome.reason == reason
    assert CALLS == []
    [dead] = dead_letters(aws, dlq)
    assert dead["MessageAttributes"][envelope.ATTR_REASON]["StringValue"] == reason
    if not text.startswith('{"northmigrate"'):
        assert dead["Body"] == text  # not an envelope: the body goes unchanged
    else:
        assert json.loads(dead["Body"])["failures"][-1]["reason"] == reason


def test_when_the_dlq_send_fails_the_message_is_not_deleted(aws: AwsClients) -> None:
    class Broken:
        def __getattr__(self, operation: str) -> Any:
            def call(**_: Any) -> None:
                raise botocore.exceptions.ClientError(
                    {"Error": {"Code": "InternalError", "Message": "try later"}}, operation
                )

            return call

    processor, _ = make(aws, sqs=Broken())
    outcome = processor.process(message(body({"item_id": "A-1", "mode": "permanent"}), 1))
    assert outcome.status is Status.RETRY
    assert not outcome.delete
    assert outcome.dead_letter_error is not None and "InternalError" in outcome.dead_letter_error


def test_a_fifo_dlq_gets_the_group_and_at_most_ten_attributes(aws: AwsClients) -> None:
    processor, dlq = make(aws, fifo=True)
    raw = message("plain text", 1, MessageGroupId="grp")
    raw["MessageAttributes"] = {
        f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)
    }
    assert processor.process(raw).status is Status.DEAD_LETTERED
    [dead] = dead_letters(aws, dlq)
    assert dead["Attributes"]["MessageGroupId"] == "grp"
    assert len(dead["MessageAttributes"]) == 10
    assert envelope.ATTR_REASON in dead["MessageAttributes"]


# -- attempts are real attempts ------------------------------------------------------------


def make_with_main(clients: AwsClients, *, delay: int = 0) -> tuple[Processor, str, str]:
    """A processor whose retries are delayed copies in a main queue (as the worker's are)."""
    sqs = clients.client("sqs")
    main = sqs.create_queue(QueueName="main")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    processor = Processor(
        MIGRATION,
        clients=clients,
        options={"table": "t"},
        dlq_url=dlq,
        max_receive_count=3,
        clock=lambda: NOW,
        queue_url=main,
        retry_delay=lambda attempt, kind="outage": delay,
    )
    return processor, main, dlq


def receive_all(clients: AwsClients, url: str) -> list[dict[str, Any]]:
    got = clients.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    )
    return list(got.get("Messages", []))


def test_receives_that_tried_nothing_do_not_count_as_attempts(aws: AwsClients) -> None:
    """A message received 40 times (peeks, hand-backs, killed workers) is on its 1st try."""
    processor, main, dlq = make_with_main(aws)
    failing = {"item_id": "A-1", "mode": "boom", "secret": "s3cr3t"}
    outcome = processor.process(message(body(failing), 40))
    assert outcome.status is Status.REQUEUED and outcome.delete
    assert (outcome.attempt, CALLS[-1][1].attempt) == (1, 1)
    assert receive_all(aws, dlq) == []
    # Each try that failed is one more attempt in the copy; the third is the last.
    attempts = []
    for _ in range(3):
        [copy] = receive_all(aws, main)
        outcome = processor.process(copy)
        attempts.append((outcome.attempt, outcome.status))
        aws.client("sqs").delete_message(QueueUrl=main, ReceiptHandle=copy["ReceiptHandle"])
        if outcome.status is Status.DEAD_LETTERED:
            break
    assert attempts == [(2, Status.REQUEUED), (3, Status.DEAD_LETTERED)]
    [dead] = receive_all(aws, dlq)
    data = json.loads(dead["Body"])
    assert [(f["kind"], f["attempt"]) for f in data["failures"]] == [
        ("retry", 1),
        ("retry", 2),
        ("exhausted", 3),
    ]
    assert data["attempts"] == 0  # brought back from the DLQ, it gets a whole set of tries
    assert data["record"] == failing


def test_a_retry_copy_keeps_the_body_attributes_and_provenance(aws: AwsClients) -> None:
    processor, main, _ = make_with_main(aws, delay=0)
    raw = message(
        body({"item_id": "A-1", "mode": "boom"}),
        1,
        ApproximateFirstReceiveTimestamp="1764464523000",
    )
    raw["MessageAttributes"] = {
        **envelope.attributes("items", "A-1"),
        "trace": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
    }
    assert processor.process(raw).status is Status.REQUEUED
    [copy] = receive_all(aws, main)
    data = json.loads(copy["Body"])
    assert data["origin"] == {
        "message_id": "m-1",
        "queue": "main",
        "first_received_at": "2025-11-30T01:02:03.000000Z",
    }
    assert copy["MessageAttributes"]["trace"]["BinaryValue"] == b"\x00\xff\x10"
    assert copy["MessageAttributes"][envelope.ATTR_RECORD_ID]["StringValue"] == "A-1"


def test_a_retry_copy_is_delayed_by_the_backoff(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor, main, _ = make_with_main(aws, delay=7)
    sent: list[dict[str, Any]] = []
    real = processor.sqs.send_message

    def spy(**request: Any) -> Any:
        sent.append(request)
        return real(**request)

    monkeypatch.setattr(processor.sqs, "send_message", spy)
    outcome = processor.process(message(body({"item_id": "A-1", "mode": "boom"}), 1))
    assert outcome.status is Status.REQUEUED and outcome.delay_s == 7
    assert [(r["QueueUrl"], r["DelaySeconds"]) for r in sent] == [(main, 7)]


def test_on_a_fifo_queue_a_retry_stays_in_place(aws: AwsClients) -> None:
    processor, _ = make(aws, fifo=True)
    processor.queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/main.fifo"
    outcome = processor.process(message(body({"item_id": "A-1", "mode": "boom"}), 2))
    assert outcome.status is Status.RETRY and not outcome.delete
    assert outcome.attempt == 2  # SQS's receive count, on a FIFO queue


# -- every dead letter keeps its reason and provenance, whatever its size --------------------


@pytest.mark.parametrize("history", [0, 20])
def test_a_record_at_the_size_limit_is_dead_lettered_with_its_reason(
    aws: AwsClients, history: int
) -> None:
    processor, main, dlq = make_with_main(aws)
    limit = 16_384
    for url in (main, dlq):
        aws.client("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"MaximumMessageSize": str(limit)}
        )
    earlier = [
        envelope.failure(
            kind="retry",
            error_class="X",
            reason="X: " + "r" * 300,
            attempt=i,
            migration="items",
            version="1",
        )
        for i in range(history)
    ]
    attrs = envelope.attributes("items", "A-1")
    env = envelope.Envelope(
        migration="items",
        record_id="A-1",
        record={"item_id": "A-1", "mode": "permanent"},
        failures=earlier,
    )
    # 300 bytes short of the limit: the failure entry, the history, the reason and origin
    # attributes cannot all fit; the copy still keeps the body and a reason.
    pad = limit - len(env.to_body().encode()) - attributes_size(attrs) - 300
    env.record["secret"] = "s" * max(pad, 0)
    raw_body = env.to_body()
    raw = message(raw_body, 1)
    assert len(raw_body.encode()) + attributes_size(attrs) <= limit
    outcome = processor.process(raw)
    assert outcome.status is Status.DEAD_LETTERED
    [dead] = receive_all(aws, dlq)
    size = len(dead["Body"].encode()) + attributes_size(dead["MessageAttributes"])
    assert size <= limit  # as SQS counts it: body and attributes
    reason = dead["MessageAttributes"][envelope.ATTR_REASON]["StringValue"]
    assert reason.startswith("PermanentError: refused A-1")
    assert json.loads(dead["Body"])["record"] == env.record  # the record itself unchanged
    origin = json.loads(dead["MessageAttributes"][envelope.ATTR_ORIGIN]["StringValue"])
    assert origin["message_id"] == "m-1"


def test_a_foreign_body_near_the_limit_keeps_its_reason(aws: AwsClients) -> None:
    processor, _, dlq = make_with_main(aws)
    limit = 8_192
    aws.client("sqs").set_queue_attributes(
        QueueUrl=dlq, Attributes={"MaximumMessageSize": str(limit)}
    )
    raw = message("x" * (limit - 200), 1)
    raw["MessageAttributes"] = {"big": {"DataType": "String", "StringValue": "v" * 150}}
    assert processor.process(raw).status is Status.DEAD_LETTERED
    [dead] = receive_all(aws, dlq)
    assert dead["Body"] == raw["Body"]
    assert dead["MessageAttributes"][envelope.ATTR_REASON]["StringValue"].startswith(
        "EnvelopeError"
    )
    assert len(dead["Body"].encode()) + attributes_size(dead["MessageAttributes"]) <= limit


def test_a_dead_letter_names_its_first_message_queue_and_first_receive(aws: AwsClients) -> None:
    processor, _, dlq = make_with_main(aws)
    raw = message("not an envelope", 3, ApproximateFirstReceiveTimestamp="1764464523000")
    assert processor.process(raw).status is Status.DEAD_LETTERED
    [dead] = receive_all(aws, dlq)
    origin = json.loads(dead["MessageAttributes"][envelope.ATTR_ORIGIN]["StringValue"])
    assert origin == {
        "message_id": "m-1",
        "queue": "main",
        "first_received_at": "2025-11-30T01:02:03.000000Z",
    }


# -- binary attributes and hostile plugins ---------------------------------------------------


def test_a_lambda_binary_attribute_is_copied_as_its_bytes(aws: AwsClients) -> None:
    """AWS's documented SQS event: ``binaryValue`` is base64 text of the bytes."""
    processor, _, dlq = make_with_main(aws)
    event_record = {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": "not an envelope",
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185",
        },
        "messageAttributes": {
            "myAttribute": {
                "binaryValue": "AP8QgA==",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            }
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
        "awsRegion": "us-east-2",
    }
    assert normalise(event_record).message_attributes["myAttribute"]["BinaryValue"] == (
        b"\x00\xff\x10\x80"
    )
    assert processor.process(event_record).status is Status.DEAD_LETTERED
    [dead] = receive_all(aws, dlq)
    assert dead["MessageAttributes"]["myAttribute"]["BinaryValue"] == b"\x00\xff\x10\x80"


class Picky(BaseModel):
    item_id: str
    secret: str = ""

    @pydantic.model_validator(mode="after")
    def _lookup(self) -> Picky:
        if self.item_id.startswith("K"):
            raise KeyError(self.secret)
        return self


def test_a_model_validator_raising_anything_is_a_dead_letter_with_a_scrubbed_reason(
    aws: AwsClients,
) -> None:
    migration = Migration(
        name="items", model=Picky, key="item_id", handler=handle, sensitive=("secret",)
    )
    processor, _ = make(aws)
    processor.migration = migration
    outcome = processor.process(message(body({"item_id": "K-1", "secret": "TAXID-12345"}), 1))
    assert outcome.status is Status.DEAD_LETTERED and outcome.kind == "invalid"
    assert outcome.reason is not None and "TAXID-12345" not in outcome.reason
    assert outcome.reason.startswith("KeyError")


def test_attribute_values_hold_only_characters_sqs_takes(aws: AwsClients) -> None:
    """SQS refuses a message whose attribute holds ESC, BEL or U+FFFF (moto does not check):
    a reason or a record id holding them is written with escapes instead."""
    processor, _, dlq = make_with_main(aws)
    hostile = "A-\x1b[2J\x07\uffff"
    raw = message(body({"item_id": hostile, "mode": "permanent"}), 1)
    raw["MessageAttributes"] = envelope.attributes("items", hostile)
    assert processor.process(raw).status is Status.DEAD_LETTERED
    [dead] = receive_all(aws, dlq)
    for name in (envelope.ATTR_REASON, envelope.ATTR_RECORD_ID, envelope.ATTR_ORIGIN):
        value = dead["MessageAttributes"][name]["StringValue"]
        assert not any(c in value for c in "\x1b\x07\uffff"), (name, value)
    assert "\\x1b" in dead["MessageAttributes"][envelope.ATTR_REASON]["StringValue"]
    assert json.loads(dead["Body"])["record_id"] == hostile  # the body keeps it exactly
