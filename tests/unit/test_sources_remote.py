"""DynamoDB and S3 sources, and resumable scans, on moto's in-process mock (no network)."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from boto3.dynamodb.types import Binary

from northmigrate import enqueue
from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings
from northmigrate.errors import AwsError, InputError
from northmigrate.examples.onboarding import migration
from northmigrate.records.sample import SampleGenerator
from northmigrate.records.validation import Validator
from northmigrate.sources import ScanOptions, SourceError, SourceItem, open_source
from northmigrate.sources.dynamodb import default_segments, plain
from northmigrate.sources.filters import build_filter
from northmigrate.sources.resume import PageToken, ScanCheckpoint, ScanState, state_path
from northmigrate.sources.s3 import ObjectStream

TABLE = "old-onboarding"


@pytest.fixture
def clients(mocked_aws: None) -> AwsClients:
    return AwsClients(AwsSettings(region="us-east-1"))


def make_table(clients: AwsClients, count: int, name: str = TABLE) -> list[str]:
    """A table keyed (customer_id, application_id) holding ``count`` example records."""
    ddb = clients.session.resource("dynamodb")
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "customer_id", "AttributeType": "S"},
            {"AttributeName": "application_id", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "customer_id", "KeyType": "HASH"},
            {"AttributeName": "application_id", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    table = ddb.Table(name)
    ids = []
    with table.batch_writer() as batch:
        for n in range(1, count + 1):
            batch.put_item(Item=as_item(SampleGenerator(seed=n).record(n)))
            ids.append(f"APP-{n:07d}")
    return ids


def as_item(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the old service stored it: numbers as N, product lists as a string set."""
    item: dict[str, Any] = json.loads(json.dumps(record))
    item["annual_revenue"] = Decimal(item["annual_revenue"])
    for owner in item["owners"]:
        owner["ownership_pct"] = Decimal(owner["ownership_pct"])
    item["requested_products"] = set(item["requested_products"])
    return item


# -- plain records and filters ------------------------------------------------------------


def test_plain_keeps_decimals_sorts_sets_and_encodes_binary() -> None:
    value = {
        "n": Decimal("12.50"),
        "i": Decimal("7"),
        "ss": {"b", "a", "c"},
        "ns": {Decimal("3"), Decimal("1")},
        "bin": Binary(b"\x00\xff"),
        "bs": {Binary(b"b"), Binary(b"a")},
        "nested": [{"x": {"z", "y"}}],
    }
    assert plain(value) == {
        "n": Decimal("12.50"),
        "i": Decimal("7"),
        "ss": ["a", "b", "c"],
        "ns": [Decimal("1"), Decimal("3")],
        "bin": "AP8=",
        "bs": ["YQ==", "Yg=="],
        "nested": [{"x": ["y", "z"]}],
    }


def test_a_stored_record_with_numbers_and_sets_validates_against_the_example_model() -> None:
    record = SampleGenerator(seed=3).record(3)
    record["status"] = "approved"
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    wire = {k: TypeSerializer().serialize(v) for k, v in as_item(record).items()}
    data = {k: plain(TypeDeserializer().deserialize(v)) for k, v in wire.items()}
    checked = Validator(migration, max_message_size=262_144).check(SourceItem(None, data=data))
    assert checked.kind == "eligible", checked.rejection
    assert checked.message is not None
    body = json.loads(checked.message.body, parse_float=Decimal)["record"]
    assert body["requested_products"] == sorted(record["requested_products"])
    assert body["annual_revenue"] == Decimal(record["annual_revenue"])  # the item's number


def test_simple_filters_become_expressions_with_placeholders() -> None:
    got = build_filter(["status=approved", "business.address.country!=CA", "n=5"])
    assert got["FilterExpression"] == (
        "(#f0_0 = :f0) AND (#f1_0.#f1_1.#f1_2 <> :f1) AND (#f2_0 = :f2)"
    )
    assert got["ExpressionAttributeNames"] == {
        "#f0_0": "status",
        "#f1_0": "business",
        "#f1_1": "address",
        "#f1_2": "country",
        "#f2_0": "n",
    }
    assert got["ExpressionAttributeValues"] == {
        ":f0": {"S": "approved"},
        ":f1": {"S": "CA"},
        ":f2": {"N": "5"},
    }
    assert build_filter(['zip="01234"'])["ExpressionAttributeValues"] == {":f0": {"S": "01234"}}


def test_raw_filters_take_names_and_values() -> None:
    got = build_filter(["#status IN (:a, :b)"], '{":a": "approved", ":b": "submitted"}')
    assert got == {
        "FilterExpression": "#status IN (:a, :b)",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":a": {"S": "approved"}, ":b": {"S": "submitted"}},
    }
    assert build_filter([]) == {}


@pytest.mark.parametrize(
    ("filters", "values", "message"),
    [
        (["#s = :v"], None, "without a value"),
        (["#s = :v"], "{not json", "not valid JSON"),
        (["#s = :v"], '{"v": 1}', "JSON object like"),
        ([], '{":v": 1}', "needs a --filter"),
    ],
)
def test_bad_filters_are_input_errors(filters: list[str], values: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_filter(filters, values)


def test_default_segments_follow_the_table_size() -> None:
    mib = 1024 * 1024
    assert [default_segments(s) for s in (0, 1, 100 * mib, 100 * mib + 1, 10**12)] == [
        1,
        1,
        1,
        2,
        32,
    ]


# -- scanning -----------------------------------------------------------------------------


def read_all(source: Any) -> list[SourceItem]:
    try:
        return list(source)
    finally:
        source.close()


def test_parallel_scan_reads_every_item_once_with_its_key(clients: AwsClients) -> None:
    ids = make_table(clients, 57)
    source = open_source(
        f"dynamodb://{TABLE}?page_size=5",
        clients=clients,
        options=ScanOptions(segments=3, consistent=True),
    )
    items = read_all(source)
    got = [i.data["application_id"] for i in items]
    assert sorted(got) == ids
    assert source.pages_read > 12  # type: ignore[attr-defined]  (several pages a segment)
    first = items[0]
    assert first.line is None and first.error is None
    assert first.origin == (
        f"dynamodb://{TABLE} customer_id={first.data['customer_id']},"
        f"application_id={first.data['application_id']}"
    )
    assert isinstance(first.data["requested_products"], list)
    assert source.progress() == (57, 57)


def test_a_filter_narrows_the_scan(clients: AwsClients) -> None:
    make_table(clients, 40)
    expected = sum(SampleGenerator(seed=n).record(n)["status"] == "approved" for n in range(1, 41))
    items = read_all(
        open_source(
            f"dynamodb://{TABLE}",
            clients=clients,
            options=ScanOptions(filters=("status=approved",)),
        )
    )
    assert len(items) == expected > 0
    assert {i.data["status"] for i in items} == {"approved"}


def test_sensitive_key_values_are_masked_in_positions(clients: AwsClients) -> None:
    make_table(clients, 3)
    items = read_all(
        open_source(
            f"dynamodb://{TABLE}", clients=clients, options=ScanOptions(sensitive=("customer_id",))
        )
    )
    assert all(i.origin and "customer_id=***," in i.origin for i in items)


class Throttled:
    """A DynamoDB client whose Scan is throttled on some calls (as after botocore's retries)."""

    def __init__(self, real: Any, fail_every: int, code: str) -> None:
        self.real, self.fail_every, self.code, self.calls = real, fail_every, code, 0
        self.starts: list[Any] = []

    def describe_table(self, **kwargs: Any) -> Any:
        return self.real.describe_table(**kwargs)

    def scan(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls % self.fail_every == 0:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": self.code, "Message": "slow down"}}, "Scan"
            )
        self.starts.append(kwargs.get("ExclusiveStartKey"))
        return self.real.scan(**kwargs)


class FakeClients:
    def __init__(self, **services: Any) -> None:
        self.services = services

    def client(self, name: str) -> Any:
        return self.services[name]


def test_throttling_is_retried_from_the_same_position(clients: AwsClients) -> None:
    ids = make_table(clients, 45)
    ddb = Throttled(clients.client("dynamodb"), 3, "ProvisionedThroughputExceededException")
    sleeps: list[float] = []
    source = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=FakeClients(dynamodb=ddb),
        sleep=sleeps.append,
        options=ScanOptions(segments=2),
    )
    got = sorted(i.data["application_id"] for i in read_all(source))
    assert got == ids  # nothing skipped, nothing twice
    assert source.retries == len(sleeps) > 3  # type: ignore[attr-defined]


def test_access_denied_ends_the_read_with_an_aws_error(clients: AwsClients) -> None:
    make_table(clients, 5)
    ddb = Throttled(clients.client("dynamodb"), 1, "AccessDeniedException")
    source = open_source(f"dynamodb://{TABLE}", clients=FakeClients(dynamodb=ddb))
    with pytest.raises(AwsError, match="access denied"):
        read_all(source)


def test_a_filter_dynamodb_refuses_is_an_input_error(clients: AwsClients) -> None:
    make_table(clients, 5)
    source = open_source(
        f"dynamodb://{TABLE}",
        clients=clients,
        options=ScanOptions(filters=("#s BETWEEN :a",), filter_values='{":a": 1}'),
    )
    with pytest.raises(InputError):
        read_all(source)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("dynamodb://missing", {}, "does not exist"),
        ("dynamodb://a/b", {}, "expected dynamodb://TABLE"),
        ("dynamodb://t?size=1", {}, "unknown parameter"),
        ("s3://bucket/x.jsonl", {"segments": 2}, "--segments applies to dynamodb://"),
        ("s3://bucket", {}, "name an object or a prefix"),
        ("s3://bucket/x.parquet", {}, "cannot tell the format"),
    ],
)
def test_remote_names_and_options_are_checked(
    clients: AwsClients, name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(name, clients=clients, options=ScanOptions(**options))


# -- checkpoints and resuming -------------------------------------------------------------


def test_a_segment_moves_only_past_pages_settled_in_order(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = ScanState(table="t", queue="q", total_segments=2)
    cp = ScanCheckpoint(state, path)
    key = {"pk": {"S": "a"}}
    p0 = cp.page_read(0, 0, 2, key, 2)
    p1 = cp.page_read(0, 1, 1, {"pk": {"S": "b"}}, 1)
    cp.settle(p1, True)  # the later page first: nothing moves
    assert state.segments[0].start_key is None
    cp.settle(p0, True)
    assert state.segments[0].start_key is None  # one item of page 0 still out
    cp.settle(p0, True)
    assert state.segments[0].start_key == {"pk": {"S": "b"}}  # both pages now
    assert state.segments[0].scanned == 3
    loaded = ScanState.load(path)
    assert loaded is not None and loaded.segments[0].start_key == {"pk": {"S": "b"}}
    # an empty page (a filter matched nothing) moves at once; the last page ends the segment
    cp.page_read(1, 0, 0, {"pk": {"B": b"\x01"}}, 9)
    assert state.segments[1].start_key == {"pk": {"B": b"\x01"}}
    last = cp.page_read(1, 1, 1, None, 1)
    cp.settle(last, True)
    assert state.segments[1].done and not state.finished
    assert ScanState.load(path).segments[1].done  # type: ignore[union-attr]


def test_a_failed_send_holds_its_segment_back(tmp_path: Path) -> None:
    state = ScanState(table="t", queue="q", total_segments=1)
    cp = ScanCheckpoint(state, tmp_path / "s.json")
    p0 = cp.page_read(0, 0, 1, {"k": {"S": "1"}}, 1)
    p1 = cp.page_read(0, 1, 1, None, 1)
    cp.settle(p0, False)
    cp.settle(p1, True)
    assert state.segments[0].start_key is None and not state.segments[0].done


def test_state_files_are_keyed_by_table_and_queue_and_damage_is_reported(tmp_path: Path) -> None:
    assert state_path("t", "q", tmp_path) != state_path("t", "q2", tmp_path)
    assert state_path("a/b", "q", tmp_path).parent == tmp_path
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="damaged"):
        ScanState.load(bad)
    assert ScanState.load(tmp_path / "none.json") is None
    assert PageToken(0, 1) == PageToken(0, 1)


def test_a_crash_part_way_then_resume_reads_every_item(clients: AwsClients, tmp_path: Path) -> None:
    ids = make_table(clients, 60)
    path = tmp_path / "state.json"
    uri = f"dynamodb://{TABLE}?page_size=4"
    first = open_source(uri, clients=clients, options=ScanOptions(segments=3, state_file=path))
    seen: list[str] = []
    for n, item in enumerate(first):
        if n == 25:
            break  # "crash": the rest is never settled
        seen.append(item.data["application_id"])
        # the second page of every segment is never confirmed. Segments are read side by
        # side in any order, but 25 items of 3 segments put 9 or more into one of them, so
        # at least one segment has a whole first page committed and a second page held
        if item.token.page != 1:
            first.settle(item, True)
    first.close()
    state = ScanState.load(path)
    assert state is not None and not state.finished
    assert any(s.start_key for s in state.segments)
    second = open_source(uri, clients=clients, options=ScanOptions(state_file=path, resume=True))
    info = second.resume_info()
    assert info is not None and info["resumed"] is True
    rest = []
    for item in second:
        rest.append(item.data["application_id"])
        second.settle(item, True)
    second.close()
    assert set(seen) | set(rest) == set(ids)
    assert len(rest) < len(ids)  # it did resume: committed pages were not read again
    again = open_source(uri, clients=clients, options=ScanOptions(state_file=path, resume=True))
    assert read_all(again) == []  # a finished scan has nothing left


def test_resume_refuses_a_different_filter_or_segment_count(
    clients: AwsClients, tmp_path: Path
) -> None:
    make_table(clients, 3)
    path = tmp_path / "s.json"
    read_all(
        open_source(
            f"dynamodb://{TABLE}", clients=clients, options=ScanOptions(segments=2, state_file=path)
        )
    )
    with pytest.raises(InputError, match="--filter"):
        open_source(
            f"dynamodb://{TABLE}",
            clients=clients,
            options=ScanOptions(state_file=path, resume=True, filters=("status=approved",)),
        )
    with pytest.raises(InputError, match="--segments 2"):
        open_source(
            f"dynamodb://{TABLE}",
            clients=clients,
            options=ScanOptions(state_file=path, resume=True, segments=3),
        )


def test_a_state_dir_keeps_the_state_in_the_file_of_the_table_and_queue(
    clients: AwsClients, tmp_path: Path
) -> None:
    make_table(clients, 5)
    options = ScanOptions(state_dir=tmp_path / "resume", queue_name="main-q")
    source = open_source(f"dynamodb://{TABLE}", clients=clients, options=options)
    expected = state_path(TABLE, "main-q", tmp_path / "resume")
    info = source.resume_info()
    assert info is not None and info["state_file"] == str(expected)
    assert source.checkpointed and expected.is_file()
    source.close()


def test_the_uris_page_size_wins_over_the_options(clients: AwsClients) -> None:
    make_table(clients, 12)
    options = ScanOptions(segments=1, page_size=100)
    source = open_source(f"dynamodb://{TABLE}?page_size=3", clients=clients, options=options)
    assert len(read_all(source)) == 12
    assert source.pages_read >= 4  # type: ignore[attr-defined]


class RecordingSqs:
    """The real client; remembers which record ids SQS confirmed, and when."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.confirmed: set[str] = set()

    def send_message_batch(self, **kwargs: Any) -> Any:
        response = self.real.send_message_batch(**kwargs)
        by_id = {e["Id"]: e for e in kwargs["Entries"]}
        for ok in response.get("Successful", []):
            body = json.loads(by_id[ok["Id"]]["MessageBody"])
            self.confirmed.add(body["record_id"])
        return response


def test_enqueue_settles_each_item_once_and_only_after_sqs_confirmed(
    clients: AwsClients, tmp_path: Path
) -> None:
    make_table(clients, 30)
    sqs = RecordingSqs(clients.client("sqs"))
    url = sqs.real.create_queue(QueueName="q")["QueueUrl"]
    path = tmp_path / "s.json"
    source = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=clients,
        options=ScanOptions(segments=2, state_file=path),
    )
    settled: list[tuple[str, bool]] = []
    early: list[str] = []

    def on_settled(item: SourceItem, ok: bool) -> None:
        record_id = item.data["application_id"]
        if item.data["status"] in ("approved", "submitted") and record_id not in sqs.confirmed:
            early.append(record_id)
        settled.append((record_id, ok))
        source.settle(item, ok)

    report = enqueue.run(
        source, migration, max_message_size=262_144, sqs=sqs, queue_url=url, settled=on_settled
    )
    assert report.complete and report.enqueued == report.tally.eligible > 0
    assert early == []  # no eligible item was settled before SQS confirmed it
    assert sorted(a for a, _ in settled) == sorted(f"APP-{n:07d}" for n in range(1, 31))
    assert all(ok for _, ok in settled)
    state = ScanState.load(path)
    assert state is not None and state.finished


def test_enqueue_settles_a_checkpointed_source_by_itself(
    clients: AwsClients, tmp_path: Path
) -> None:
    make_table(clients, 20)
    sqs = clients.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    path = tmp_path / "s.json"
    source = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=clients,
        options=ScanOptions(segments=2, state_file=path),
    )
    assert source.checkpointed
    report = enqueue.run(source, migration, max_message_size=262_144, sqs=sqs, queue_url=url)
    assert report.complete and report.enqueued == report.tally.eligible > 0
    state = ScanState.load(path)
    assert state is not None and state.finished


def test_a_dry_run_moves_no_resume_position(clients: AwsClients, tmp_path: Path) -> None:
    make_table(clients, 10)
    path = tmp_path / "s.json"
    source = open_source(
        f"dynamodb://{TABLE}?page_size=4", clients=clients, options=ScanOptions(state_file=path)
    )
    report = enqueue.run(
        source, migration, max_message_size=262_144, sqs=object(), queue_url="u", dry_run=True
    )
    assert report.tally.read == 10 and report.enqueued == 0
    state = ScanState.load(path)
    assert state is not None and not state.finished
    assert [(s.start_key, s.done) for s in state.segments] == [(None, False)]


def test_a_dry_run_settles_eligible_items_as_not_sent(clients: AwsClients) -> None:
    make_table(clients, 10)
    source = open_source(f"dynamodb://{TABLE}", clients=clients)
    outcomes: dict[str, bool] = {}
    report = enqueue.run(
        source,
        migration,
        max_message_size=262_144,
        sqs=object(),
        queue_url="u",
        dry_run=True,
        settled=lambda item, ok: outcomes.__setitem__(item.data["application_id"], ok),
    )
    assert len(outcomes) == 10
    assert sum(not ok for ok in outcomes.values()) == report.tally.eligible


# -- S3 -----------------------------------------------------------------------------------


def records_jsonl(count: int) -> bytes:
    return b"".join(
        json.dumps(SampleGenerator(seed=n).record(n)).encode() + b"\n" for n in range(1, count + 1)
    )


def test_one_object_streams_with_its_key_and_lines(clients: AwsClients) -> None:
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="exports")
    data = records_jsonl(5) + b"not json\n"
    s3.put_object(Bucket="exports", Key="day/1.jsonl.gz", Body=gzip.compress(data))
    source = open_source("s3://exports/day/1.jsonl.gz", clients=clients)
    items = read_all(source)
    assert [i.line for i in items] == [1, 2, 3, 4, 5, 6]
    assert {i.origin for i in items} == {"s3://exports/day/1.jsonl.gz"}
    checked = Validator(migration, max_message_size=262_144).check(items[-1])
    assert checked.rejection is not None
    assert checked.rejection.to_dict()["origin"] == "s3://exports/day/1.jsonl.gz"
    assert checked.rejection.line == 6
    size = len(gzip.compress(data))
    assert source.progress()[1] == size


def test_a_prefix_reads_objects_in_key_order_skipping_placeholders(clients: AwsClients) -> None:
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="exports")
    s3.put_object(Bucket="exports", Key="p/", Body=b"")
    s3.put_object(Bucket="exports", Key="p/_SUCCESS", Body=b"")
    s3.put_object(Bucket="exports", Key="p/b.csv", Body=b"a,b\n1,2\n3,4\n")
    s3.put_object(Bucket="exports", Key="p/a.json", Body=b'[{"a": 0}]')
    s3.put_object(Bucket="exports", Key="p/c/d.ndjson", Body=b'{"a": 5}\n')
    s3.put_object(Bucket="exports", Key="other.jsonl", Body=b'{"a": 9}\n')
    source = open_source("s3://exports/p/", clients=clients)
    items = read_all(source)
    assert [(i.origin, i.line) for i in items] == [
        ("s3://exports/p/a.json", 1),
        ("s3://exports/p/b.csv", 2),
        ("s3://exports/p/b.csv", 3),
        ("s3://exports/p/c/d.ndjson", 1),
    ]
    done, total = source.progress()
    assert done == total == 10 + 12 + 9


def test_a_prefix_with_an_unknown_format_fails_before_reading(clients: AwsClients) -> None:
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="exports")
    s3.put_object(Bucket="exports", Key="p/a.jsonl", Body=b"{}\n")
    s3.put_object(Bucket="exports", Key="p/manifest.txt", Body=b"x")
    with pytest.raises(SourceError, match=r"unknown format: p/manifest\.txt"):
        open_source("s3://exports/p/", clients=clients)
    with pytest.raises(SourceError, match="no records to read"):
        open_source("s3://exports/empty/", clients=clients)


@pytest.mark.parametrize(
    ("name", "message"),
    [("s3://exports/missing.jsonl", "does not exist"), ("s3://nobucket/a.csv", "does not exist")],
)
def test_missing_objects_and_buckets_are_source_errors(
    clients: AwsClients, name: str, message: str
) -> None:
    clients.client("s3").create_bucket(Bucket="exports")
    with pytest.raises(SourceError, match=message):
        open_source(name, clients=clients)


def test_a_broken_gzip_object_is_a_source_error_naming_it(clients: AwsClients) -> None:
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="exports")
    s3.put_object(Bucket="exports", Key="x.jsonl.gz", Body=b"not gzip at all")
    with pytest.raises(SourceError, match=r"s3://exports/x.jsonl.gz"):
        read_all(open_source("s3://exports/x.jsonl.gz", clients=clients))


class DroppingBody:
    """A response body whose connection drops after ``cut`` bytes."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.stream, self.cut, self.read_so_far = io.BytesIO(data), cut, 0

    def read(self, n: int) -> bytes:
        if self.read_so_far >= self.cut:
            raise botocore.exceptions.ResponseStreamingError(error="connection reset")
        chunk = self.stream.read(min(n, self.cut - self.read_so_far))
        self.read_so_far += len(chunk)
        return chunk

    def close(self) -> None:
        pass


class FlakyS3:
    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut, self.calls = data, cut, []  # type: ignore[var-annotated]

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        start = int(kwargs["Range"][len("bytes=") : -1]) if "Range" in kwargs else 0
        rest = self.data[start:]
        return {"Body": DroppingBody(rest, self.cut), "ETag": '"e1"', "ContentLength": len(rest)}


def test_a_dropped_connection_resumes_from_the_byte_reached() -> None:
    data = bytes(range(256)) * 40
    s3 = FlakyS3(data, cut=3000)
    stream = ObjectStream(s3, "b", "k.jsonl", sleep=lambda s: None)
    got = io.BufferedReader(stream, buffer_size=1024).read()
    assert got == data
    assert stream.reopened == 3
    assert s3.calls[1] == {
        "Bucket": "b",
        "Key": "k.jsonl",
        "Range": "bytes=3000-",
        "IfMatch": '"e1"',
    }
