"""A parallel scan of many segments runs on a bounded pool of threads (moto in-process)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings
from northmigrate.errors import InputError
from northmigrate.sources import ScanOptions, open_source
from northmigrate.sources.dynamodb import SCAN_THREADS

TABLE = "many-segments"


@pytest.fixture
def clients(mocked_aws: None) -> AwsClients:
    return AwsClients(AwsSettings(region="us-east-1"))


def make_table(clients: AwsClients, count: int) -> list[str]:
    ddb = clients.client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ids = [f"item-{n:04d}" for n in range(count)]
    for pk in ids:
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": pk}})
    return ids


class Counting:
    """A DynamoDB client that records how many scan threads live, and calls run, at once."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.lock = threading.Condition()
        self.in_flight = self.most_in_flight = self.most_threads = self.calls = 0
        self.segments: set[int] = set()

    def describe_table(self, **kwargs: Any) -> Any:
        """The table as DynamoDB's counts saw it hours ago, when it was larger (200 MiB): a
        table that could use 200 segments."""
        described = self.real.describe_table(**kwargs)
        described["Table"].update(ItemCount=100_000, TableSizeBytes=200 * 1024 * 1024)
        return described

    def scan(self, **kwargs: Any) -> Any:
        threads = sum(t.name.startswith("nm-scan-") for t in threading.enumerate())
        with self.lock:
            self.calls += 1
            self.segments.add(kwargs.get("Segment", 0))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.most_threads = max(self.most_threads, threads)
            # hold the call until more calls than the pool's bound run at once (they cannot,
            # unless threads are not bounded), or a moment passed
            self.lock.notify_all()
            self.lock.wait_for(lambda: self.in_flight > SCAN_THREADS, timeout=0.1)
        try:
            return self.real.scan(**kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1


class FakeClients:
    def __init__(self, **services: Any) -> None:
        self.services = services

    def client(self, name: str) -> Any:
        return self.services[name]


def test_many_segments_use_a_bounded_pool_and_read_every_item_once(clients: AwsClients) -> None:
    ids = make_table(clients, 150)
    ddb = Counting(clients.client("dynamodb"))
    before = threading.active_count()
    source = open_source(
        f"dynamodb://{TABLE}?page_size=3",
        clients=FakeClients(dynamodb=ddb),
        options=ScanOptions(segments=200),
    )
    try:
        got = [item.data["pk"] for item in source]
    finally:
        source.close()
    assert sorted(got) == ids  # every item, none twice
    assert ddb.segments == set(range(200))  # every segment was scanned
    assert 1 < ddb.most_threads <= SCAN_THREADS
    assert ddb.most_in_flight <= SCAN_THREADS
    assert threading.active_count() <= before  # the pool is gone once the scan ends


def test_fewer_segments_than_the_pool_get_one_thread_each(clients: AwsClients) -> None:
    ids = make_table(clients, 20)
    ddb = Counting(clients.client("dynamodb"))
    source = open_source(
        f"dynamodb://{TABLE}", clients=FakeClients(dynamodb=ddb), options=ScanOptions(segments=3)
    )
    try:
        assert sorted(item.data["pk"] for item in source) == ids
    finally:
        source.close()
    assert ddb.segments == {0, 1, 2} and ddb.most_threads <= 3


@pytest.mark.parametrize("segments", [0, 1_000_001])
def test_segments_outside_dynamodbs_range_are_input_errors(
    clients: AwsClients, segments: int
) -> None:
    make_table(clients, 1)
    with pytest.raises(InputError, match="--segments must be between 1 and 1000000"):
        open_source(f"dynamodb://{TABLE}", clients=clients, options=ScanOptions(segments=segments))
