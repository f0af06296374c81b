"""The guard: a window of outcomes, a share of the handler's failures, one trip; and a
worker that sees it trip closes the tap for every consumer and stops, losing nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
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
    KIND_EXHAUSTED,
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


def queued(
    aws: AwsClients, settings: Settings, handler: Any, n: int
) -> tuple[Migration[Item], str, list[str]]:
    """The queues provisioned and ``n`` records sent: the migration, main queue and ids."""
    migration = Migration(name="items", model=Item, key="item_id", handler=handler)
    url = provision(aws, settings, None).queue_url
    ids = [f"A-{i:03d}" for i in range(n)]
    for item_id in ids:
        send(aws, url, item_id)
    return migration, url, ids


def ok() -> Outcome:
    return Outcome(Status.SUCCEEDED, MESSAGE)


def down(error: str = "TargetUnavailable", kind: str = "outage", record: str = "r") -> Outcome:
    return Outcome(
        Status.REQUEUED,
        MESSAGE,
        record_id=record,
        reason=f"{error}: no",
        error=RuntimeError(),
        error_kind=kind,
    )


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
    assert trip.kind == "outage"
    assert trip.reason == (
        "outage: 5 of the last 10 records failed: TargetUnavailable (4), ValueError (1)"
    )
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
        g.record(
            Outcome(
                Status.DEAD_LETTERED,
                MESSAGE,
                kind=KIND_EXHAUSTED,
                reason="E: x",
                error_kind="outage",
            )
        )
    assert len(trips) == 1


def test_record_errors_never_trip_it_by_default_however_clustered() -> None:
    g, trips = guard()
    for n in range(50):  # a sorted source: every record hit by one bug, side by side
        g.record(down("ValueError", kind="record", record=f"CA-{n}"))
    permanent = Outcome(
        Status.DEAD_LETTERED, MESSAGE, kind=KIND_PERMANENT, reason="PermanentError: x"
    )
    for _ in range(20):
        g.record(permanent)
    assert trips == [] and g.trip is None


def test_stop_on_record_errors_counts_distinct_records() -> None:
    g, trips = guard(stop_on_record_errors=True)
    for _ in range(3):  # one poison record tried again and again: not a bug in every record
        for n in range(3):
            g.record(down("KeyError", kind="record", record=f"R-{n}"))
        g.record(ok())
    assert trips == []
    for n in range(10):
        g.record(down("KeyError", kind="record", record=f"S-{n}"))
    [trip] = trips
    assert trip.kind == "record"
    assert trip.reason.startswith("record: ") and "KeyError (" in trip.reason


def test_throttled_tries_are_not_in_the_window() -> None:
    g, trips = guard()
    for _ in range(100):
        g.record(down("ThrottlingException", kind="throttled"))
    assert trips == []
    for _ in range(10):
        g.record(down())  # the window holds only these ten tries
    [trip] = trips
    assert trip.failed == 10 and trip.window == 10


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


def test_with_manual_reopen_a_worker_closes_the_tap_for_everyone_and_stops_losing_nothing(
    aws: AwsClients,
) -> None:
    settings = Settings(
        queue=QueueSettings(name="q", visibility_timeout=30, max_receive_count=5),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0, backoff_base_s=0, concurrency=2),
        guard=GuardSettings(window=20, min_records=20, failure_share=0.5, reopen="manual"),
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

    migration, url, ids = queued(aws, settings, handler, 60)

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


def test_a_sorted_export_whose_first_records_hit_one_bug_migrates_every_other(
    aws: AwsClients,
) -> None:
    """Finding 1 of issue 25: the first 30 of 120 records of a sorted export hit the same bug
    (the defaults, max_receive_count 2). The tap stays open, the 90 others are migrated, and
    the 30 reach the DLQ with their reason and kind after retries of seconds, not minutes."""
    settings = Settings(
        queue=QueueSettings(name="q", visibility_timeout=30, max_receive_count=2),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0),
    )
    migrated: list[str] = []
    events: list[dict[str, Any]] = []

    def handler(record: Item, ctx: Any) -> None:
        if record.item_id < "A-030":  # the first 30 of a sorted export
            raise ValueError("province missing")
        migrated.append(record.item_id)

    migration, url, ids = queued(aws, settings, handler, 120)

    report = Worker(aws, settings, migration, emit=events.append).run(until_empty=True)

    assert report.stopped == "empty" and report.error is None
    assert read_state(aws.client("sqs"), url).open
    assert sorted(migrated) == ids[30:]
    assert report.dead_lettered == 30
    retries = [e for e in events if e["outcome"] == "retried"]
    assert len(retries) == 30 and {e["error_kind"] for e in retries} == {"record"}
    assert max(e["backoff_s"] for e in retries) <= settings.worker.record_backoff_max_s
    sqs = aws.client("sqs")
    dlq = sqs.get_queue_url(QueueName="q-dlq")["QueueUrl"]
    letters = []
    while got := sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        letters += got
    assert len(letters) == 30
    for letter in letters:
        attrs = letter["MessageAttributes"]
        assert attrs["northmigrate.error_kind"]["StringValue"] == "record"
        assert attrs["northmigrate.reason"]["StringValue"] == "ValueError: province missing"


def test_half_of_the_answers_throttled_dead_letters_nothing(aws: AwsClients) -> None:
    """Finding 2 of issue 25 on the local worker: a throttled try is not charged, so with
    max_receive_count 2 and every other answer ``ThrottlingException`` nothing is burnt."""
    settings = Settings(
        queue=QueueSettings(name="q", visibility_timeout=30, max_receive_count=2),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0, throttle_backoff_s=0, concurrency=4),
    )
    answers = iter(range(10_000))
    lock = threading.Lock()
    migrated: list[str] = []
    events: list[dict[str, Any]] = []

    def handler(record: Item, ctx: Any) -> None:
        with lock:
            n = next(answers)
        if n % 2 == 0:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "PutItem"
            )
        migrated.append(record.item_id)

    migration, _, ids = queued(aws, settings, handler, 40)

    report = Worker(aws, settings, migration, emit=events.append).run(until_empty=True)

    assert report.stopped == "empty" and report.dead_lettered == 0
    assert sorted(migrated) == ids
    throttled = [e for e in events if e["error_kind"] == "throttled"]
    assert len(throttled) >= 20 and all(e["outcome"] == "retried" for e in throttled)
