"""Who reads the main queue (a worker's heartbeat, an enabled mapping), and a canary that
says at once when nothing does instead of waiting in silence (finding 4 of issue 25)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.cli.canary import waiting_teller
from northmigrate.cli.output import OutputFormat
from northmigrate.config import MigrationSettings, QueueSettings, Settings
from northmigrate.consume.presence import TAG_WORKER_SEEN, mark_seen, readers
from northmigrate.consume.tap import Tap
from northmigrate.control.provision import provision
from northmigrate.dlq.canary import canary_redrive
from northmigrate.plugin import Migration
from northmigrate.records import envelope
from northmigrate.records.envelope import utc_now


class Item(BaseModel):
    item_id: str


SETTINGS = Settings(
    queue=QueueSettings(name="q"), migration=MigrationSettings(plugin="tests:migration")
)


@pytest.fixture
def tap(mocked_aws: None) -> Tap:
    aws = AwsClients()
    provision(aws, SETTINGS, None)
    return Tap(aws, Queues(aws.client("sqs"), SETTINGS.queue))


def test_nothing_reads_a_queue_without_a_recent_worker_or_an_enabled_mapping(tap: Tap) -> None:
    found = readers(tap)
    assert not found.any and found.worker_seen is None and found.mappings_enabled == 0
    assert "no local worker was seen in the last 3 min" in found.why_none()
    url = tap.queues.main_url()
    mark_seen(tap.sqs, url, utc_now() - timedelta(minutes=10))
    assert not readers(tap).any  # seen, but long ago
    mark_seen(tap.sqs, url)
    found = readers(tap)
    assert (
        found.any
        and found.worker_seen == tap.sqs.list_queue_tags(QueueUrl=url)["Tags"][TAG_WORKER_SEEN]
    )
    tap.close(reason="maintenance")
    found = readers(tap)
    assert not found.any
    assert found.why_none() == ("the tap is closed (by operator: maintenance); tap open reopens it")


def test_a_canary_with_no_consumer_warns_at_once(tap: Tap) -> None:
    sqs = tap.sqs
    dlq = tap.queues.dlq_url()
    body = envelope.Envelope("items", "A-1", {"item_id": "A-1"}).to_body()
    sqs.send_message(QueueUrl=dlq, MessageBody=body)
    told: list[dict[str, Any]] = []
    migration = Migration(
        name="items",
        model=Item,
        key="item_id",
        handler=lambda r, c: None,
        verify=lambda r, c: False,  # nothing migrates it: nobody reads the queue
    )
    report = canary_redrive(
        sqs,
        dlq,
        tap.queues.main_url(),
        migration=migration,
        clients=tap.clients,
        options={},
        size=1,
        wait_s=0.2,
        redrive_kwargs={},
        poll_s=0.1,
        on_wait=told.append,
        readers=lambda: readers(tap),
    )
    assert not report.passed
    [event] = told
    assert event["event"] == "waiting" and event["for"].startswith("a consumer to migrate")
    assert event["warning"].startswith("nothing reads the main queue: no local worker")
    assert event["readers"]["reading"] is False


def test_the_canarys_wait_is_told_on_stderr_in_both_formats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {
        "event": "waiting",
        "for": "a consumer to migrate the canary (5 records)",
        "wait_s": 300.0,
        "warning": "nothing reads the main queue: no local worker was seen",
    }
    waiting_teller(OutputFormat.table)(event)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "waiting up to 300 s for a consumer to migrate the canary (5 records)",
        "Warning: nothing reads the main queue: no local worker was seen",
    ]
    waiting_teller(OutputFormat.json)(event)
    captured = capsys.readouterr()
    assert json.loads(captured.err) == event and captured.out == ""
