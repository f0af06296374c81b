"""The worker as a library, on moto in-process: delivery, FIFO order, stopping, draining."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.message import InMessage
from northmigrate.config import MigrationSettings, QueueSettings, Settings, WorkerSettings
from northmigrate.consume.worker import PREFETCH, Worker, WorkerReport, receivers_for, runner
from northmigrate.consume.worker.ledger import Ledger
from northmigrate.control.provision import provision
from northmigrate.plugin import Migration, MigrationContext
from northmigrate.records import envelope


class Item(BaseModel):
    item_id: str
    group: str = ""


class Recorder:
    """A handler that records what it ran; ``behave`` decides per call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, int]] = []
        self.active: set[str] = set()
        self.overlap = False
        self.behave: Callable[[Item, MigrationContext], None] = lambda r, c: None

    def __call__(self, record: Item, ctx: MigrationContext) -> None:
        with self.lock:
            self.calls.append((record.item_id, ctx.attempt))
            if record.group and record.group in self.active:
                self.overlap = True
            self.active.add(record.group)
        try:
            time.sleep(0.01)
            self.behave(record, ctx)
        finally:
            with self.lock:
                self.active.discard(record.group)


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    return AwsClients(pool_size=16)


def setup(
    clients: AwsClients, *, fifo: bool = False, **worker: Any
) -> tuple[Settings, Recorder, Migration[Item], str]:
    settings = Settings(
        queue=QueueSettings(
            name="q.fifo" if fifo else "q", visibility_timeout=30, max_receive_count=3
        ),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0, backoff_base_s=0, **worker),
    )
    recorder = Recorder()
    migration = Migration(name="items", model=Item, key="item_id", handler=recorder)
    url = provision(clients, settings, None).queue_url
    return settings, recorder, migration, url


def send(clients: AwsClients, url: str, item_id: str, group: str | None = None) -> None:
    record = {"item_id": item_id, "group": group or ""}
    extra: dict[str, Any] = {}
    if group is not None:
        extra = {"MessageGroupId": group, "MessageDeduplicationId": item_id}
    clients.client("sqs").send_message(
        QueueUrl=url,
        MessageBody=envelope.Envelope(
            migration="items", record_id=item_id, record=record
        ).to_body(),
        MessageAttributes=envelope.attributes("items", item_id),
        **extra,
    )


def depth(clients: AwsClients, url: str) -> tuple[int, int]:
    attrs = clients.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    a = attrs["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def adds_up(report: WorkerReport) -> None:
    assert report.received == (
        report.succeeded
        + report.retried
        + report.dead_lettered
        + report.released
        + report.abandoned
    )


def test_every_message_is_migrated_once_and_deleted(aws: AwsClients) -> None:
    settings, recorder, migration, url = setup(aws)
    for n in range(25):
        send(aws, url, f"A-{n}")
    report = Worker(aws, settings, migration, concurrency=4).run(until_empty=True)
    assert sorted(i for i, _ in recorder.calls) == sorted(f"A-{n}" for n in range(25))
    assert (report.received, report.succeeded, report.stopped) == (25, 25, "empty")
    adds_up(report)
    assert depth(aws, url) == (0, 0)


def test_fifo_groups_run_in_order_and_never_two_at_once(aws: AwsClients) -> None:
    settings, recorder, migration, url = setup(aws, fifo=True)
    for n in range(4):
        for group in ("g1", "g2", "g3"):
            send(aws, url, f"{group}-{n}", group)
    report = Worker(aws, settings, migration, concurrency=8).run(until_empty=True)
    assert report.succeeded == 12
    assert not recorder.overlap
    for group in ("g1", "g2", "g3"):
        assert [i for i, _ in recorder.calls if i.startswith(group)] == [
            f"{group}-{n}" for n in range(4)
        ]


def test_a_fifo_failure_holds_back_the_rest_of_its_group(aws: AwsClients) -> None:
    settings, recorder, migration, url = setup(aws, fifo=True)

    def behave(record: Item, ctx: MigrationContext) -> None:
        if record.item_id == "g-1" and ctx.attempt == 1:
            raise ConnectionError("busy")

    recorder.behave = behave
    for n in range(4):
        send(aws, url, f"g-{n}", "g")
    report = Worker(aws, settings, migration, concurrency=8).run(until_empty=True)
    assert [i for i, _ in recorder.calls] == ["g-0", "g-1", "g-1", "g-2", "g-3"]
    assert (report.succeeded, report.retried, report.dead_lettered) == (4, 1, 0)
    assert report.released == 2  # g-2 and g-3, received with g-1, went back unstarted
    adds_up(report)
    assert depth(aws, url) == (0, 0)


def test_max_messages_receives_no_more(aws: AwsClients) -> None:
    settings, _recorder, migration, url = setup(aws)
    for n in range(15):
        send(aws, url, f"A-{n}")
    report = Worker(aws, settings, migration, concurrency=2).run(max_messages=5)
    assert (report.received, report.succeeded, report.stopped) == (5, 5, "max_messages")
    assert depth(aws, url) == (10, 0)


def test_max_messages_holds_with_several_receivers(aws: AwsClients) -> None:
    settings, _recorder, migration, url = setup(aws)
    for n in range(40):
        send(aws, url, f"A-{n}")
    worker = Worker(aws, settings, migration, concurrency=8)
    assert worker.receivers == 2
    report = worker.run(max_messages=15)
    assert (report.received, report.succeeded, report.stopped) == (15, 15, "max_messages")
    assert depth(aws, url) == (25, 0)


def test_a_message_that_comes_again_while_held_runs_once_and_is_deleted(
    aws: AwsClients,
) -> None:
    settings, recorder, migration, url = setup(aws)
    send(aws, url, "A-1")
    sqs = aws.client("sqs")
    real_receive, real_delete = sqs.receive_message, sqs.delete_message_batch
    handles: list[str] = []  # receipt handles of A-1, in the order they came
    deleted: list[str] = []

    def receive(**kwargs: Any) -> Any:
        # The first delivery is made visible again at once: the next receive, while the
        # handler still runs, brings the same message with a newer receipt handle.
        response = real_receive(**kwargs)
        for message in response.get("Messages", []):
            handles.append(message["ReceiptHandle"])
            if len(handles) == 1:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=handles[0], VisibilityTimeout=0
                )
        return response

    def delete(**kwargs: Any) -> Any:
        deleted.extend(entry["ReceiptHandle"] for entry in kwargs["Entries"])
        return real_delete(**kwargs)

    sqs.receive_message, sqs.delete_message_batch = receive, delete
    recorder.behave = lambda record, ctx: time.sleep(0.5)
    report = Worker(aws, settings, migration, concurrency=1).run(until_empty=True)

    assert recorder.calls == [("A-1", 1)]
    assert (report.received, report.succeeded) == (1, 1)
    assert len(handles) == 2
    assert deleted == [handles[1]]  # real SQS keeps a message deleted with an older handle
    assert depth(aws, url) == (0, 0)


def test_a_receiver_that_fails_ends_the_run_with_its_error(aws: AwsClients) -> None:
    settings, _recorder, migration, url = setup(aws)
    for n in range(30):
        send(aws, url, f"A-{n}")
    sqs = aws.client("sqs")
    real_receive = sqs.receive_message

    def receive(**kwargs: Any) -> Any:
        if threading.current_thread().name == "nm-receive-1":  # the second receiver only
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "ReceiveMessage"
            )
        return real_receive(**kwargs)

    sqs.receive_message = receive
    report = Worker(aws, settings, migration, concurrency=8).run(until_empty=True)

    assert report.stopped == "error"
    assert report.error is not None and "AccessDenied" in str(report.error)
    adds_up(report)


@pytest.mark.parametrize(
    ("concurrency", "receivers"),
    [(1, 1), (3, 1), (4, 2), (8, 2), (20, 2), (21, 3), (32, 4), (200, 4)],
)
def test_receivers_grow_with_the_pool(concurrency: int, receivers: int) -> None:
    assert receivers_for(concurrency) == receivers
    assert receivers_for(concurrency, fifo=True) == 1


def test_the_worker_holds_at_most_its_pool_and_prefetch(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, recorder, migration, url = setup(aws)
    for n in range(60):
        send(aws, url, f"A-{n}")
    held: list[int] = []

    class Watched(Ledger):
        def take_in(self, messages: list[InMessage], reserved: int) -> list[InMessage]:
            fresh = super().take_in(messages, reserved)
            held.append(self.held)
            return fresh

    monkeypatch.setattr(runner, "Ledger", Watched)
    worker = Worker(aws, settings, migration, concurrency=4)
    in_flight: list[int] = []

    def behave(record: Item, ctx: MigrationContext) -> None:
        in_flight.append(depth(aws, url)[1])  # running, waiting, or being deleted
        time.sleep(0.05)

    recorder.behave = behave
    report = worker.run(until_empty=True)
    assert report.succeeded == 60
    assert worker.capacity == 4 + PREFETCH * 2
    # Messages wait in memory while the pool is busy (the pipe stays full), and the worker
    # never holds more than the pool and its prefetch. (SQS's own in-flight count also
    # holds settled messages whose delete has not gone out yet: on a busy machine, more.)
    assert max(in_flight) > worker.concurrency
    assert max(held) <= worker.capacity
    assert max(held) > worker.concurrency


def test_until_empty_waits_for_a_message_in_flight_elsewhere(aws: AwsClients) -> None:
    settings, recorder, migration, url = setup(aws)
    send(aws, url, "A-1")
    held = aws.client("sqs").receive_message(QueueUrl=url, VisibilityTimeout=1)
    assert len(held["Messages"]) == 1  # another consumer holds it for a second, then dies
    report = Worker(aws, settings, migration).run(until_empty=True)
    assert report.succeeded == 1
    # Received twice, tried once: the other consumer's receive was not an attempt.
    assert recorder.calls == [("A-1", 1)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds
        time.sleep(0.001)


def run_in_thread(worker: Worker, **kwargs: Any) -> tuple[threading.Thread, list[WorkerReport]]:
    out: list[WorkerReport] = []
    thread = threading.Thread(target=lambda: out.append(worker.run(**kwargs)), daemon=True)
    thread.start()
    return thread, out


def test_stop_finishes_started_records_and_hands_back_unstarted_ones(aws: AwsClients) -> None:
    settings, recorder, migration, url = setup(aws, fifo=True)
    started, proceed = threading.Event(), threading.Event()

    def behave(record: Item, ctx: MigrationContext) -> None:
        started.set()
        assert proceed.wait(10)

    recorder.behave = behave
    for n in range(3):
        send(aws, url, f"g-{n}", "g")
    stop = threading.Event()
    thread, out = run_in_thread(Worker(aws, settings, migration, concurrency=4, stop=stop))
    assert started.wait(10)
    stop.set()
    time.sleep(0.3)  # the unstarted ones are handed back while g-0 still runs
    assert depth(aws, url) == (2, 1)
    proceed.set()
    thread.join(10)
    [report] = out
    assert (report.succeeded, report.released, report.stopped) == (1, 2, "signal")
    adds_up(report)
    assert [i for i, _ in recorder.calls] == ["g-0"]
    assert depth(aws, url) == (2, 0)


def test_a_record_still_running_after_the_grace_period_is_left_to_sqs(aws: AwsClients) -> None:
    settings, recorder, migration, url = setup(aws, grace_period_s=5)
    started, release = threading.Event(), threading.Event()

    def behave(record: Item, ctx: MigrationContext) -> None:
        started.set()
        release.wait(30)

    recorder.behave = behave
    send(aws, url, "A-1")
    clock, stop = FakeClock(), threading.Event()
    worker = Worker(
        aws, settings, migration, concurrency=1, stop=stop, clock=clock, sleep=clock.sleep
    )
    thread, out = run_in_thread(worker)
    assert started.wait(10)
    stop.set()
    thread.join(10)
    release.set()
    [report] = out
    assert (report.abandoned, report.succeeded, report.stopped) == (1, 0, "signal")
    assert 5 <= clock.now < 6  # it waited the grace period (on the fake clock), no more
    adds_up(report)
    assert depth(aws, url) == (0, 1)  # not deleted: it comes back when its visibility lapses
