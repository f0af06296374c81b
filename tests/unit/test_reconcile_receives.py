"""``reconcile --read-queue`` never takes the receives a worker needs (moto in-process).

Every read of the main queue is one receive against its redrive policy. Reconcile uses only
the receive headroom (``maxReceiveCount`` minus ``queue.max_receive_count``): a message read
with fewer receives left than the worker's tries is reported unsettled, and the read of the
main queue stops there, so no other message is brought closer to the DLQ by that run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.config import QueueSettings
from northmigrate.control.reconcile import reconcile
from northmigrate.dlq.letters import record_reasons
from northmigrate.plugin import Migration
from northmigrate.records import envelope
from northmigrate.sources import open_source


class Record(BaseModel):
    id: str


MIGRATION = Migration(
    name="rq", model=Record, key="id", handler=lambda r, c: None, verify=lambda r, c: False
)
TRIES = 2  # queue.max_receive_count: the worker's
HEADROOM = 3  # queue.receive_headroom: what reads that try nothing may use
IDS = [f"R{n}" for n in range(12)]


@pytest.fixture
def queues(mocked_aws: None) -> Queues:
    sqs = AwsClients().client("sqs")
    settings = QueueSettings(name="rq", max_receive_count=TRIES, receive_headroom=HEADROOM)
    dlq = sqs.create_queue(QueueName="rq-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": TRIES + HEADROOM}
    main = sqs.create_queue(
        QueueName="rq", Attributes={"RedrivePolicy": json.dumps(policy), "VisibilityTimeout": "30"}
    )["QueueUrl"]
    for record_id in IDS:
        body = envelope.Envelope("rq", record_id, {"id": record_id}).to_body()
        sqs.send_message(QueueUrl=main, MessageBody=body)
    return Queues(sqs, settings)


def run(queues: Queues, source: Path) -> Any:
    return reconcile(
        open_source(str(source)),
        MIGRATION,
        AwsClients(),
        queues,
        {},
        peek=record_reasons,
        max_message_size=262_144,
        read_queue=True,
        receive_reserve=TRIES,
    )


def receive_counts(queues: Queues) -> dict[str, int]:
    """{record id: receives before this look} of every message in the main queue; the look
    gives every message back at once."""
    sqs, url = queues.sqs, queues.main_url()
    counts: dict[str, int] = {}
    handles = []
    for _ in range(10):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages", [])
        for m in got:
            record_id = json.loads(m["Body"])["record_id"]
            counts[record_id] = int(m["Attributes"]["ApproximateReceiveCount"]) - 1
            handles.append(m["ReceiptHandle"])
        if len(counts) == len(IDS):
            break
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return counts


def test_read_queue_stops_at_the_headroom_and_reports_unsettled(
    queues: Queues, tmp_path: Path
) -> None:
    source = tmp_path / "rq.jsonl"
    source.write_text("".join(json.dumps({"id": i}) + "\n" for i in IDS))
    reports = [run(queues, source) for _ in range(HEADROOM)]
    # Within the headroom, every record is found in the queue.
    for report in reports[:-1]:
        assert report.in_queue == len(IDS) and report.unsettled_total == 0
        assert report.to_dict()["read_queue_stopped"] is None
    # Then reading stops: nothing is missing, the records are unsettled, the run says why.
    stopped = reports[-1]
    assert stopped.missing_total == 0 and stopped.dead_lettered == 0
    assert stopped.unsettled_total + stopped.in_queue == len(IDS)
    assert stopped.unsettled_total > 0 and not stopped.ok
    told = stopped.to_dict()["read_queue_stopped"]
    assert told == {"receives": HEADROOM, "max_receive_count": TRIES + HEADROOM}
    # No message has fewer receives left than the worker's tries, none reached the DLQ.
    counts = receive_counts(queues)
    assert len(counts) == len(IDS) and max(counts.values()) <= HEADROOM, counts
    assert queues.depth(queues.dlq_url()).total == 0

    # A run after that stops at its first chunk of messages: the rest are not read again.
    again = run(queues, source)
    assert again.unsettled_total > 0 and again.missing_total == 0 and not again.ok
    after = receive_counts(queues)
    # (the look itself added one receive to each)
    assert sum(after.values()) - sum(counts.values()) - len(IDS) <= 10


def test_the_table_says_why_the_read_stopped() -> None:
    from rich.console import Console

    from northmigrate.cli.reconcile import _render
    from northmigrate.control.reconcile import ReconcileReport

    report = ReconcileReport(source="rq.jsonl", read_queue=True, main_depth=3)
    report.add_unsettled("R1")
    report.stopped_at = (3, 5)
    console = Console(width=80, record=True, color_system=None)
    _render(report, console)
    text = " ".join(console.export_text().split())
    assert "stopped reading the main queue" in text and "3 of its 5 receives" in text
    assert "reconcile without --read-queue" in text
