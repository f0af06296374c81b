"""An outage closes the tap and a probe reopens it: one record tried (not charged) or the
plugin's probe, every ``guard.probe_interval_s``; a tap a person closed stays closed."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.cli.worker import waiting_teller
from northmigrate.config import (
    GuardSettings,
    MigrationSettings,
    QueueSettings,
    Settings,
    WorkerSettings,
)
from northmigrate.consume.probe import Prober
from northmigrate.consume.processing import Processor
from northmigrate.consume.tap import Tap, read_state
from northmigrate.consume.worker import Worker
from northmigrate.control.provision import provision
from northmigrate.plugin import Migration
from northmigrate.records import envelope

BY = "guard (worker test:1)"


class Item(BaseModel):
    item_id: str


def settings(**guard: Any) -> Settings:
    return Settings(
        queue=QueueSettings(name="q", visibility_timeout=30, max_receive_count=5),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0, backoff_base_s=0, concurrency=2),
        guard=GuardSettings(**({"window": 20, "min_records": 20, "probe_interval_s": 1} | guard)),
    )


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    return AwsClients(pool_size=16)


def send(aws: AwsClients, url: str, ids: list[str]) -> None:
    for item_id in ids:
        body = envelope.Envelope("items", item_id, {"item_id": item_id}).to_body()
        aws.client("sqs").send_message(QueueUrl=url, MessageBody=body)


def dlq_depth(aws: AwsClients) -> int:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName="q-dlq")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_an_outage_closes_the_tap_and_the_probe_reopens_it_burning_nothing(
    aws: AwsClients,
) -> None:
    config = settings()
    lock = threading.Lock()
    failures_left = [24]  # the trip (20), what was in flight, and a probe or two
    migrated: list[str] = []
    attempts: list[int] = []
    waiting: list[dict[str, Any]] = []

    def handler(record: Item, ctx: Any) -> None:
        with lock:
            down = failures_left[0] > 0
            failures_left[0] -= 1
            attempts.append(ctx.attempt)
        if down:
            raise ConnectionError("the new service does not answer")
        migrated.append(record.item_id)

    migration = Migration(name="items", model=Item, key="item_id", handler=handler)
    url = provision(aws, config, None).queue_url
    ids = [f"A-{n:03d}" for n in range(60)]
    send(aws, url, ids)

    report = Worker(aws, config, migration, notify=waiting.append).run(until_empty=True)

    assert report.stopped == "empty" and report.error is None
    assert sorted(set(migrated)) == ids
    assert dlq_depth(aws) == 0  # nothing burnt
    assert max(attempts) <= 2  # the probes were not charged
    state = read_state(aws.client("sqs"), url)
    assert state.open and state.opened is not None
    assert state.opened.startswith("guard (worker ") and "the probe succeeded after" in state.opened
    [told] = [w for w in waiting if w["closed_by"].startswith("guard")]
    assert told["event"] == "waiting" and told["for"] == "the tap to open"
    assert told["reason"].startswith("outage: ") and "ConnectionError" in told["reason"]
    assert told["reopens"] == "the guard's next probe (every 1 s)"
    assert told["since"]


def prober(aws: AwsClients, migration: Migration[Any], config: Settings) -> tuple[Prober, Tap]:
    sqs = aws.client("sqs")
    queues = Queues(sqs, config.queue)
    processor = Processor(
        migration,
        clients=aws,
        options={},
        dlq_url=queues.dlq_url(),
        max_receive_count=config.queue.max_receive_count,
        sqs=sqs,
        queue_url=queues.main_url(),
    )
    tap = Tap(aws, queues)
    return Prober(processor, tap, by=BY, interval_s=0.0), tap


def test_the_plugins_probe_is_asked_instead_of_a_record(aws: AwsClients) -> None:
    config = settings()
    answers = [ConnectionError("down"), None]
    tried: list[str] = []

    def probe(ctx: Any) -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    def handler(record: Item, ctx: Any) -> None:
        tried.append(record.item_id)

    migration = Migration(name="items", model=Item, key="item_id", handler=handler, probe=probe)
    url = provision(aws, config, None).queue_url
    send(aws, url, ["A-1"])
    p, tap = prober(aws, migration, config)
    tap.close(by=BY, reason="outage: 20 of the last 20 records failed")
    assert p.probe() is False and not tap.state().open
    assert p.probe() is True and tap.state().open
    assert tried == []  # the record stayed in the queue, untouched


def test_a_record_that_meets_the_outage_again_is_not_charged(aws: AwsClients) -> None:
    config = settings()

    def handler(record: Item, ctx: Any) -> None:
        raise ConnectionError("still down")

    migration = Migration(name="items", model=Item, key="item_id", handler=handler)
    url = provision(aws, config, None).queue_url
    send(aws, url, ["A-1"])
    p, tap = prober(aws, migration, config)
    tap.close(by=BY, reason="outage")
    assert p.probe() is False and not tap.state().open
    sqs = aws.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    waiting = int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesDelayed"]
    )
    assert waiting == 1 and dlq_depth(aws) == 0
    copy = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0, VisibilityTimeout=0)
    for message in copy.get("Messages", []):  # the copy, when its delay is already over
        assert envelope.parse(message["Body"]).attempts == 0


def test_a_tap_a_person_closed_is_never_reopened_by_a_probe(aws: AwsClients) -> None:
    config = settings()
    migration = Migration(name="items", model=Item, key="item_id", handler=lambda r, c: None)
    provision(aws, config, None)
    p, tap = prober(aws, migration, config)
    tap.close(by="operator", reason="maintenance")
    assert p.probe() is False
    state = tap.state()
    assert not state.open and state.closed_by == "operator"


def test_a_worker_waits_for_a_tap_a_person_closed_and_says_what_reopens_it(
    aws: AwsClients,
) -> None:
    config = settings()
    migration = Migration(name="items", model=Item, key="item_id", handler=lambda r, c: None)
    url = provision(aws, config, None).queue_url
    send(aws, url, ["A-1"])
    queues = Queues(aws.client("sqs"), config.queue)
    Tap(aws, queues).close(by="operator", reason="maintenance")
    told = threading.Event()
    waiting: list[dict[str, Any]] = []

    def notify(event: dict[str, Any]) -> None:
        waiting.append(event)
        told.set()

    stop = threading.Event()
    worker = Worker(aws, config, migration, notify=notify, stop=stop)
    thread = threading.Thread(target=worker.run, kwargs={"until_empty": True})
    thread.start()
    assert told.wait(30)
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    [event] = waiting
    assert event["closed_by"] == "operator" and event["reason"] == "maintenance"
    assert event["reopens"] == "northmigrate tap open"
    assert not read_state(aws.client("sqs"), url).open  # no probe opened it


def test_the_worker_command_tells_what_it_waits_for_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {
        "event": "waiting",
        "for": "the tap to open",
        "closed_by": "guard (worker h:1)",
        "since": "2026-12-06T03:00:00.000000Z",
        "reason": "outage: 20 of the last 20 records failed: ConnectionError (20)",
        "reopens": "the guard's next probe (every 30 s)",
    }
    waiting_teller(False)(event)
    err = capsys.readouterr().err
    assert "waiting for the tap to open: closed by guard (worker h:1) since 2026-12-06T03:00" in err
    assert "(outage: 20 of the last 20 records failed: ConnectionError (20))" in err
    assert err.rstrip().endswith("what reopens it: the guard's next probe (every 30 s)")
    waiting_teller(True)(event)
    captured = capsys.readouterr()
    assert json.loads(captured.err) == event and captured.out == ""
