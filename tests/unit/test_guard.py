"""The guard: a window of outcomes, a share of the handler's failures, one trip; and a
worker that sees it trip closes the tap for every consumer and stops, losing nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.aws.sqs.message import InMessage
from northmigrate.config import (
    GuardSettings,
    MigrationSettings,
    QueueSettings,
    Settings,
    WorkerSettings,
)
from northmigrate.consume.guard import Guard, Trip
from northmigrate.consume.processing import (
    KIND_INVALID,
    KIND_PERMANENT,
    KIND_UNREADABLE,
    Outcome,
    Status,
)
from northmigrate.consume.tap import Tap, read_state
from northmigrate.consume.worker import Worker
from northmigrate.control.provision import provision
from northmigrate.plugin import Migration
from northmigrate.records import envelope

MESSAGE = InMessage("m", "r", "b", 1)


class Item(BaseModel):
    item_id: str


def send(clients: AwsClients, url: str, item_id: str) -> None:
    clients.client("sqs").send_message(
        QueueUrl=url,
        MessageBody=envelope.Envelope("items", item_id, {"item_id": item_id}).to_body(),
    )


def ok() -> Outcome:
    return Outcome(Status.SUCCEEDED, MESSAGE)


def down(error: str = "TargetUnavailable") -> Outcome:
    return Outcome(Status.REQUEUED, MESSAGE, reason=f"{error}: no", error=RuntimeError())


def guard(**settings: Any) -> tuple[Guard, list[Trip]]:
    trips: list[Trip] = []
    options = {"window": 10, "min_records": 10, "failure_share": 0.5} | settings
    return Guard(GuardSettings(**options), by="guard (test)", on_trip=trips.append), trips


def test_it_trips_once_when_the_share_of_the_window_fails() -> None:
    g, trips = guard()
    for _ in range(5):
        assert g.record(ok()) is None
    for _ in range(4):
        assert g.record(down()) is None  # 4 of 9: not yet, and fewer than min_records
    trip = g.record(down("ValueError"))  # 5 of 10
    assert trip is not None and trips == [trip]
    assert trip.reason == "5 of the last 10 records failed: TargetUnavailable (4), ValueError (1)"
    assert g.record(down()) is None and len(trips) == 1  # once


def test_the_window_forgets_old_failures() -> None:
    g, trips = guard()
    for _ in range(4):
        g.record(down())
    for _ in range(30):
        g.record(ok())
    for _ in range(4):
        g.record(down())
    assert trips == []  # never 5 failures within the last 10


def test_only_the_handlers_failures_count() -> None:
    g, trips = guard(failure_share=0.3)
    bad_data = [
        Outcome(Status.DEAD_LETTERED, MESSAGE, kind=KIND_INVALID, reason="ValidationError: x"),
        Outcome(Status.DEAD_LETTERED, MESSAGE, kind=KIND_UNREADABLE, reason="EnvelopeError: x"),
    ]
    for n in range(20):
        g.record(bad_data[n % 2])
    assert trips == []
    for _ in range(3):
        g.record(Outcome(Status.DEAD_LETTERED, MESSAGE, kind=KIND_PERMANENT, reason="E: x"))
    assert len(trips) == 1


def test_a_disabled_guard_never_trips() -> None:
    g, trips = guard(enabled=False)
    for _ in range(50):
        g.record(down())
    assert trips == []


def test_concurrent_records_trip_it_exactly_once() -> None:
    g, trips = guard(window=50, min_records=50)
    threads = [
        threading.Thread(target=lambda: [g.record(down()) for _ in range(100)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trips) == 1


# -- a worker that trips it ----------------------------------------------------------------


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    return AwsClients(pool_size=16)


def test_a_worker_closes_the_tap_for_everyone_and_stops_losing_nothing(aws: AwsClients) -> None:
    settings = Settings(
        queue=QueueSettings(name="q", visibility_timeout=30, max_receive_count=5),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0, backoff_base_s=0, concurrency=2),
        guard=GuardSettings(window=20, min_records=20, failure_share=0.5),
    )
    outage = threading.Event()
    outage.set()
    tried: list[str] = []
    migrated: list[str] = []

    def handler(record: Item, ctx: Any) -> None:
        tried.append(record.item_id)
        if outage.is_set():
            raise ConnectionError("the new service does not answer")
        migrated.append(record.item_id)

    migration = Migration(name="items", model=Item, key="item_id", handler=handler)
    url = provision(aws, settings, None).queue_url
    ids = [f"A-{n:03d}" for n in range(60)]
    for item_id in ids:
        send(aws, url, item_id)

    report = Worker(aws, settings, migration).run(until_empty=True)

    assert report.stopped == "guard" and report.error is not None
    assert report.error.exit_code == 1
    assert "of the last 20 records failed: ConnectionError" in str(report.error)
    state = read_state(aws.client("sqs"), url)
    assert not state.open and state.closed_by_guard
    assert state.reason is not None and "ConnectionError" in state.reason
    assert 20 <= len(set(tried)) < 60  # it stopped before burning through the queue

    # The service is back; an operator reopens the tap: every record migrates.
    outage.clear()
    Tap(aws, Queues(aws.client("sqs"), settings.queue)).open()
    assert read_state(aws.client("sqs"), url).open
    again = Worker(aws, settings, migration).run(until_empty=True)
    assert again.stopped == "empty"
    assert sorted(migrated) == ids
    dlq = aws.client("sqs").get_queue_url(QueueName="q-dlq")["QueueUrl"]
    attrs = aws.client("sqs").get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"  # none dead-lettered
