"""The local worker and the tap: no receive while closed; the limit caps the rate."""

from __future__ import annotations

import threading

import pytest
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.config import MigrationSettings, QueueSettings, Settings, WorkerSettings
from northmigrate.consume.tap import TAG_STATE, TapState
from northmigrate.consume.worker import Worker
from northmigrate.consume.worker.gate import TapGate
from northmigrate.control.provision import provision
from northmigrate.plugin import Migration
from northmigrate.records import envelope


class Item(BaseModel):
    item_id: str


class FakeGate:
    def __init__(self, open_: bool = True, limit: int | None = None) -> None:
        self.open = open_
        self.cap = limit
        self.waits = 0

    def state(self) -> TapState:
        return TapState(open=self.open, limit=self.cap)

    def is_open(self) -> bool:
        return self.open

    def limit(self) -> int | None:
        return self.cap

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool:
        while not self.open:
            self.waits += 1
            if stop.wait(0.01):
                return False
        return not stop.is_set()


@pytest.fixture
def aws(mocked_aws: None) -> AwsClients:
    return AwsClients()


def setup(clients: AwsClients, count: int) -> tuple[Settings, Migration[Item], list[str], str]:
    settings = Settings(
        queue=QueueSettings(name="q", visibility_timeout=30),
        migration=MigrationSettings(plugin="tests:migration"),
        worker=WorkerSettings(wait_time_s=0),
    )
    seen: list[str] = []
    migration = Migration(
        name="items", model=Item, key="item_id", handler=lambda r, c: seen.append(r.item_id)
    )
    url = provision(clients, settings, None).queue_url
    for n in range(count):
        clients.client("sqs").send_message(
            QueueUrl=url,
            MessageBody=envelope.Envelope("items", str(n), {"item_id": str(n)}).to_body(),
        )
    return settings, migration, seen, url


def test_a_closed_tap_receives_nothing(aws: AwsClients) -> None:
    settings, migration, seen, url = setup(aws, 3)
    stop = threading.Event()
    gate = FakeGate(open_=False)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    report = Worker(aws, settings, migration, stop=stop, tap=gate).run()
    timer.join()
    assert report.received == 0 and seen == [] and gate.waits > 0
    attrs = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "3"

    gate.open = True
    report = Worker(aws, settings, migration, tap=gate).run(until_empty=True)
    assert report.succeeded == 3 and sorted(seen) == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("rate", "limit", "paced"), [(None, 4, 4), (2.0, 4, 2.0), (8.0, 3, 3), (None, None, None)]
)
def test_the_tap_limit_caps_the_rate(
    aws: AwsClients, rate: float | None, limit: int | None, paced: float | None
) -> None:
    settings, migration, _seen, _ = setup(aws, 2)
    worker = Worker(aws, settings, migration, rate=rate, tap=FakeGate(limit=limit))
    assert worker.run(until_empty=True).succeeded == 2
    assert worker.receiver is not None
    bucket = worker.receiver.bucket
    assert (bucket.rate if bucket else None) == paced


def test_by_default_the_worker_reads_the_queue_tags(aws: AwsClients) -> None:
    settings, migration, seen, url = setup(aws, 1)
    aws.client("sqs").tag_queue(QueueUrl=url, Tags={TAG_STATE: "closed"})
    stop = threading.Event()
    worker = Worker(aws, settings, migration, stop=stop)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    report = worker.run()
    timer.join()
    assert isinstance(worker.tap, TapGate)
    assert report.received == 0 and seen == []
