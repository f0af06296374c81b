"""The per-record path shared by the worker and the Lambda handler (moto in-process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
import pytest
from pydantic import BaseModel

from northmigrate import envelope
from northmigrate.aws import AwsClients
from northmigrate.plugin import Migration, MigrationContext, PermanentError
from northmigrate.processing import Processor, Status, normalise


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
        }
    ]
    attrs = dead["MessageAttributes"]
    assert attrs[envelope.ATTR_RECORD_ID]["StringValue"] == "A-1"  # kept
    assert attrs[envelope.ATTR_REASON]["StringValue"] == data["failures"][0]["reason"]
    assert attrs[envelope.ATTR_FAILURE_KIND]["StringValue"] == "exhausted"
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
        def send_message(self, **_: Any) -> None:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "try later"}}, "SendMessage"
            )

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
