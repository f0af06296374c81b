"""``--shard I/N``: N shards of a source send every record exactly once between them, keep
the source's line numbers in their rejects, and each resumes alone. Files on disk, S3 and
DynamoDB on moto's in-process mock; messages go to a recording SQS (enqueue's own path)."""

from __future__ import annotations

import gzip
import json
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import BaseModel

from northmigrate import enqueue
from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings
from northmigrate.errors import InputError
from northmigrate.plugin import Migration
from northmigrate.records.rejects import RejectsWriter
from northmigrate.sources import ScanOptions, SourceError, check_options, open_source
from northmigrate.sources.cuts import window
from northmigrate.sources.shard import Shard, parse_shard
from northmigrate.sources.sharded import file_opener, plan

EOLS = ("\n", "\r\n", "\r")


class Row(BaseModel):
    id: str
    status: str


ROWS = Migration(name="rows", model=Row, key="id", handler=lambda record, ctx: None)


class FakeSqs:
    """Confirms every entry, recording the record ids it was sent."""

    def __init__(self) -> None:
        self.confirmed: list[str] = []
        self.lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        with self.lock:
            self.confirmed += [json.loads(e["MessageBody"])["record_id"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


FAST = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FEW = settings(FAST, max_examples=8)  # moto behind each example


# -- the sources, as text with their expected rejects --------------------------------------


def jsonl_text(rows: list[tuple[int, str]], eol: str) -> tuple[str, set[int]]:
    """JSONL of rows (id, kind: ok, bad, blank); the line numbers of the bad ones."""
    lines, bad = [], set()
    for number, (n, kind) in enumerate(rows, 1):
        if kind == "bad":
            bad.add(number)
            lines.append(f'{{"id": "R{n}", "status": ')  # broken JSON
        elif kind == "blank":
            lines.append("")
        else:
            lines.append(json.dumps({"id": f"R{n}", "status": "ok", "pad": "x" * (n % 7)}))
    return eol.join(lines) + eol, bad


def csv_text(rows: list[tuple[int, str]], eol: str) -> tuple[str, set[int]]:
    """CSV (a header, cells that span lines); the line numbers where the bad rows start."""
    lines, bad, number = ["id,status,notes"], set(), 1
    for n, kind in rows:
        number += 1
        if kind == "bad":
            bad.add(number)
            lines.append(f"R{n},ok")  # a column short
        elif kind == "blank":
            lines.append("")
        else:
            notes = f'"two{eol}lines, ""quoted"""' if n % 3 == 0 else "plain"
            lines.append(f"R{n},ok,{notes}")
            number += notes.count(eol)
    return eol.join(lines) + eol, bad


ROW_LISTS = st.lists(
    st.sampled_from(["ok", "ok", "ok", "bad", "blank"]), min_size=0, max_size=25
).map(lambda kinds: list(enumerate(kinds, 1)))


def expected_ids(rows: list[tuple[int, str]]) -> Counter[str]:
    return Counter(f"R{n}" for n, kind in rows if kind == "ok")


def run_shards(
    name: str, count: int, tmp_path: Path, clients: AwsClients | None = None
) -> tuple[Counter[str], list[int]]:
    """Every shard of ``name`` enqueued: the ids SQS confirmed, and the rejects' lines."""
    sent: Counter[str] = Counter()
    lines: list[int] = []
    for index in range(count):
        sqs = FakeSqs()
        path = tmp_path / f"rejects-{index}-of-{count}.jsonl"
        source = open_source(name, clients=clients, shard=Shard(index, count))
        with RejectsWriter(path) as rejects:
            report = send(source, sqs, rejects=rejects)
        assert report.complete
        sent.update(sqs.confirmed)
        lines += [json.loads(line)["line"] for line in path.read_text().splitlines()]
    return sent, lines


def send(source: Any, sqs: Any, **options: Any) -> enqueue.EnqueueReport:
    return enqueue.run(
        source, ROWS, max_message_size=262_144, sqs=sqs, queue_url="q", concurrency=2, **options
    )


# -- local files -----------------------------------------------------------------------------


@FAST
@given(rows=ROW_LISTS, count=st.integers(1, 6), eol=st.sampled_from(EOLS), csv=st.booleans())
def test_shards_of_a_file_send_every_record_once_and_keep_its_lines(
    rows: list[tuple[int, str]], count: int, eol: str, csv: bool, tmp_path_factory: Any
) -> None:
    tmp = tmp_path_factory.mktemp("file")
    text, bad = (csv_text if csv else jsonl_text)(rows, eol)
    path = tmp / ("records.csv" if csv else "records.jsonl")
    path.write_text(text, newline="")
    sent, lines = run_shards(str(path), count, tmp)
    assert sent == expected_ids(rows)
    assert sorted(lines) == sorted(bad)


@FAST
@given(rows=ROW_LISTS, count=st.integers(1, 5), kind=st.sampled_from(["json", "gz", "csv.gz"]))
def test_shards_of_a_stream_that_cannot_seek_each_keep_every_nth_item(
    rows: list[tuple[int, str]], count: int, kind: str, tmp_path_factory: Any
) -> None:
    tmp = tmp_path_factory.mktemp("stream")
    good = [(n, k) for n, k in rows if k != "blank"]
    if kind == "json":
        path = tmp / "records.json"
        items = [
            f'{{"id": "R{n}"}}' if k == "bad" else json.dumps({"id": f"R{n}", "status": "ok"})
            for n, k in good
        ]
        path.write_text("[\n" + ",\n".join(items) + "\n]\n")
        bad = {n + 2 for n, (_, k) in enumerate(good) if k == "bad"}  # one element a line
    elif kind == "gz":
        text, bad = jsonl_text(rows, "\n")
        path = tmp / "records.jsonl.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        text, bad = csv_text(rows, "\r\n")
        path = tmp / "records.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    sent, lines = run_shards(str(path), count, tmp)
    assert sent == expected_ids(rows)
    assert sorted(lines) == sorted(bad)


def test_a_shard_reads_only_its_range_and_the_prefix_it_counts(tmp_path: Path) -> None:
    """The last of four shards of a file parses its quarter: the bytes it reads past its
    range are at most one line (to find where its last line ends: here none)."""
    path = tmp_path / "big.jsonl"
    text, _ = jsonl_text([(n, "ok") for n in range(1, 401)], "\n")
    path.write_text(text)
    size = path.stat().st_size
    opened: list[tuple[int, int | None]] = []
    opener = file_opener(path)

    def spy(start: int, end: int | None) -> Any:
        opened.append((start, end))
        return opener(start, end)

    begin, end = Shard(3, 4).byte_range(size)
    cut = window(spy, size, begin, end, csv_header=False, where="big.jsonl")
    assert cut.stop == size and begin <= cut.begin < begin + 100
    assert text[: cut.begin].count("\n") + 1 == cut.first_line
    assert text[cut.begin :].startswith('{"id": ')
    middle = window(spy, size, *Shard(1, 4).byte_range(size), csv_header=False, where="b")
    assert text[middle.stop - 1] == "\n" and middle.stop - Shard(1, 4).byte_range(size)[1] < 100


def test_a_csv_header_is_read_by_every_shard_and_no_cut_falls_inside_it(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('\n\n"id","status"\nR1,ok\nR2,ok\n')
    sent, lines = run_shards(str(path), 6, tmp_path)
    assert sent == Counter({"R1": 1, "R2": 1}) and lines == []
    path.write_text("id,id\nR1,ok\n")
    with pytest.raises(SourceError, match="repeats the column"):
        list(open_source(str(path), shard=Shard(1, 2)))


def test_an_interrupted_file_shard_resumes_alone_from_its_line(tmp_path: Path) -> None:
    text, _ = jsonl_text([(n, "ok") for n in range(1, 61)], "\n")
    path = tmp_path / "records.jsonl"
    path.write_text(text)
    others: Counter[str] = Counter()
    for index in (0, 2):
        sqs = FakeSqs()
        assert send(open_source(str(path), shard=Shard(index, 3)), sqs).complete
        others.update(sqs.confirmed)
    stop = threading.Event()
    first = FakeSqs()
    source = open_source(str(path), shard=Shard(1, 3), stop=stop)
    report = send(source, first, limit=7)  # stopped part-way, as a failure would
    assert report.resume_from_line is not None and report.resume_from_line > 21
    again = FakeSqs()
    rest = send(open_source(str(path), shard=Shard(1, 3)), again, from_line=report.resume_from_line)
    assert rest.complete and rest.resume_from_line is None
    assert not set(first.confirmed) & set(again.confirmed)  # nothing of its part sent twice
    assert others + Counter(first.confirmed) + Counter(again.confirmed) == expected_ids(
        [(n, "ok") for n in range(1, 61)]
    )


# -- S3 ---------------------------------------------------------------------------------------


@pytest.fixture
def clients(mocked_aws: None) -> AwsClients:
    aws = AwsClients(AwsSettings(region="us-east-1"))
    aws.client("s3").create_bucket(Bucket="exports")
    return aws


def put(clients: AwsClients, key: str, data: bytes) -> None:
    clients.client("s3").put_object(Bucket="exports", Key=key, Body=data)


@FEW
@given(
    parts=st.lists(
        st.tuples(ROW_LISTS, st.sampled_from(["jsonl", "csv", "jsonl.gz"])), min_size=1, max_size=3
    ),
    count=st.integers(1, 6),
)
def test_shards_of_an_s3_prefix_send_every_record_once_and_keep_each_objects_lines(
    parts: list[tuple[list[tuple[int, str]], str]], count: int, tmp_path_factory: Any
) -> None:
    tmp = tmp_path_factory.mktemp("s3")
    with mock_aws():
        aws = AwsClients(AwsSettings(region="us-east-1"))
        aws.client("s3").create_bucket(Bucket="exports")
        want: Counter[str] = Counter()
        bad: list[int] = []
        for number, (rows, kind) in enumerate(parts):
            rows = [(number * 100 + n, k) for n, k in rows]  # ids unique across objects
            text, lines = (csv_text if kind == "csv" else jsonl_text)(rows, "\r\n")
            data = text.encode()
            put(aws, f"in/{number}.{kind}", gzip.compress(data) if kind.endswith("gz") else data)
            want += expected_ids(rows)
            bad += lines
        if not want and not bad:
            put(aws, "in/z.jsonl", b"\n")  # a prefix needs one object that is not empty
        sent, seen = run_shards("s3://exports/in/", count, tmp, aws)
    assert sent == want
    assert sorted(seen) == sorted(bad)


def test_a_large_object_is_split_by_byte_range_with_ranged_gets(
    clients: AwsClients, tmp_path: Path
) -> None:
    text, bad = csv_text([(n, "bad" if n % 11 == 0 else "ok") for n in range(1, 120)], "\n")
    put(clients, "one.csv", text.encode())
    sent, lines = run_shards("s3://exports/one.csv", 4, tmp_path, clients)
    assert sent == expected_ids([(n, "ok") for n in range(1, 120) if n % 11])
    assert sorted(lines) == sorted(bad)
    source = open_source("s3://exports/one.csv", clients=clients, shard=Shard(2, 4))
    _, total = source.progress()
    assert total is not None and total < len(text) // 3  # its quarter, not the object


def test_an_interrupted_s3_object_shard_resumes_alone(clients: AwsClients) -> None:
    rows = [(n, "ok") for n in range(1, 41)]
    put(clients, "one.jsonl", jsonl_text(rows, "\n")[0].encode())
    uri = "s3://exports/one.jsonl"
    first = FakeSqs()
    report = send(open_source(uri, clients=clients, shard=Shard(0, 2)), first, limit=5)
    line = report.resume_from_line
    assert line == 6
    again = FakeSqs()
    send(open_source(uri, clients=clients, shard=Shard(0, 2)), again, from_line=line)
    other = FakeSqs()
    send(open_source(uri, clients=clients, shard=Shard(1, 2)), other)
    total = Counter(first.confirmed) + Counter(again.confirmed) + Counter(other.confirmed)
    assert total == expected_ids(rows)


def test_an_interrupted_s3_prefix_shard_resumes_alone_from_its_object_and_line(
    clients: AwsClients,
) -> None:
    everything: Counter[str] = Counter()
    for number in range(4):
        rows = [(number * 100 + n, "ok") for n in range(1, 16)]
        put(clients, f"in/{number}.jsonl", jsonl_text(rows, "\n")[0].encode())
        everything += expected_ids(rows)
    uri = "s3://exports/in/"
    other = FakeSqs()
    send(open_source(uri, clients=clients, shard=Shard(0, 2)), other)
    stopped = FakeSqs()
    report = send(open_source(uri, clients=clients, shard=Shard(1, 2)), stopped, limit=20)
    assert report.to_dict()["resume_from_object"] == "in/3.jsonl"  # 2.jsonl, then 5 of 3
    assert report.resume_from_line is not None and report.resume_from_line > 1
    rest = FakeSqs()
    key = report.resume_from_object
    source = open_source(uri, clients=clients, shard=Shard(1, 2), from_object=key)
    again = send(source, rest, from_line=report.resume_from_line, from_object=key)
    assert again.complete and again.resume_from_object is None
    size = clients.client("s3").head_object(Bucket="exports", Key=key)["ContentLength"]
    assert again.source_total == size  # the objects before it were not read again
    assert Counter(other.confirmed) + Counter(stopped.confirmed) + Counter(rest.confirmed) == (
        everything
    )


def test_from_object_applies_to_a_prefix_only() -> None:
    check_options("s3://b/p/", ScanOptions(), from_line=3, from_object="p/2.jsonl")
    with pytest.raises(SourceError, match="--from-object KEY --from-line N"):
        check_options("s3://b/p/", ScanOptions(), from_line=3)
    with pytest.raises(SourceError, match="applies to an S3 prefix"):
        check_options("r.jsonl", ScanOptions(), from_object="k")
    with pytest.raises(SourceError, match="cannot share stdin"):
        check_options("-", ScanOptions(), sharded=True)


# -- DynamoDB ------------------------------------------------------------------------------------


def make_table(clients: AwsClients, size: int) -> Counter[str]:
    ddb = clients.client("dynamodb")
    ddb.create_table(
        TableName="old",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(1, size + 1):
        item = {"id": {"S": f"R{n}"}, "status": {"S": "ok"}}
        ddb.put_item(TableName="old", Item=item)
    return Counter(f"R{n}" for n in range(1, size + 1))


@FEW
@given(size=st.integers(0, 20), count=st.integers(1, 5), extra=st.integers(0, 3))
def test_shards_of_a_table_share_its_segments_and_send_every_item_once(
    size: int, count: int, extra: int, tmp_path_factory: Any
) -> None:
    tmp = tmp_path_factory.mktemp("ddb")
    with mock_aws():
        aws = AwsClients(AwsSettings(region="us-east-1"))
        want = make_table(aws, size)
        sent: Counter[str] = Counter()
        for index in range(count):
            options = ScanOptions(segments=count + extra, state_dir=tmp, queue_name="q")
            source = open_source(
                "dynamodb://old?page_size=3",
                clients=aws,
                options=options,
                shard=Shard(index, count),
            )
            sqs = FakeSqs()
            assert send(source, sqs).complete
            sent.update(sqs.confirmed)
    assert sent == want


def test_an_interrupted_table_shard_resumes_alone_from_its_own_state(
    clients: AwsClients, tmp_path: Path
) -> None:
    want = make_table(clients, 40)
    uri = "dynamodb://old?page_size=2"

    def options(resume: bool = False) -> ScanOptions:
        return ScanOptions(state_dir=tmp_path, queue_name="q", resume=resume)

    other = FakeSqs()
    send(open_source(uri, clients=clients, options=options(), shard=Shard(1, 2)), other)
    first = FakeSqs()
    report = send(
        open_source(uri, clients=clients, options=options(), shard=Shard(0, 2)), first, limit=6
    )
    assert not report.complete or report.enqueued == 6
    states = sorted(p.name for p in tmp_path.iterdir())
    assert states == ["dynamodb-old--q--shard-0-of-2.json", "dynamodb-old--q--shard-1-of-2.json"]
    resumed = open_source(uri, clients=clients, options=options(True), shard=Shard(0, 2))
    info = resumed.resume_info()
    assert info is not None and info["resumed"] and info["segments"] == 4  # 8 by default
    again = FakeSqs()
    send(resumed, again)
    total = Counter(other.confirmed) + Counter(first.confirmed) + Counter(again.confirmed)
    assert set(total) == set(want)
    assert sum(total.values()) < 40 + 6  # the resumed shard did not start over
    assert not set(other.confirmed) & (set(first.confirmed) | set(again.confirmed))


def test_a_sharded_scan_keeps_its_segment_count_whatever_the_table_holds(
    clients: AwsClients,
) -> None:
    """Unsharded, --segments above what a small table can use is lowered; sharded, every
    shard must cut the table the same way whatever counts it reads: never lowered."""
    make_table(clients, 3)
    options = ScanOptions(segments=100)
    alone = open_source("dynamodb://old", clients=clients, options=options)
    assert alone.state.total_segments < 100 and alone.notice  # type: ignore[attr-defined]
    sent: Counter[str] = Counter()
    for index in range(3):
        source = open_source(
            "dynamodb://old", clients=clients, options=options, shard=Shard(index, 3)
        )
        assert source.state.total_segments == 100 and not source.notice  # type: ignore[attr-defined]
        assert source.resume_info()["segments"] == len(range(index, 100, 3))  # type: ignore[index]
        sqs = FakeSqs()
        send(source, sqs)
        sent.update(sqs.confirmed)
    assert sent == Counter({"R1": 1, "R2": 1, "R3": 1})


def test_a_table_with_fewer_segments_than_shards_is_refused(clients: AwsClients) -> None:
    make_table(clients, 1)
    with pytest.raises(InputError, match="fewer than the 4 shards"):
        open_source(
            "dynamodb://old", clients=clients, options=ScanOptions(segments=3), shard=Shard(0, 4)
        )


# -- the shard itself ------------------------------------------------------------------------


def test_plan_tiles_the_inputs_and_gives_an_uncuttable_one_whole() -> None:
    rng = random.Random(7)
    for _ in range(200):
        sizes = [rng.randint(1, 50) for _ in range(rng.randint(1, 6))]
        cuttable = [rng.random() < 0.7 for _ in sizes]
        count = rng.randint(1, 8)
        covered: Counter[tuple[int, int]] = Counter()
        whole: Counter[int] = Counter()
        for index in range(count):
            for piece in plan(sizes, cuttable, Shard(index, count)):
                if cuttable[piece.index]:
                    covered.update((piece.index, b) for b in range(piece.start, piece.end))
                else:
                    whole[piece.index] += 1
        assert covered == Counter(
            (n, b) for n, size in enumerate(sizes) if cuttable[n] for b in range(size)
        )
        assert whole == Counter(n for n, cut in enumerate(cuttable) if not cut)


@pytest.mark.parametrize(
    ("text", "env", "shards", "expected"),
    [
        ("2/5", {}, None, Shard(2, 5)),
        (" 0 / 1 ", {}, None, Shard(0, 1)),
        (
            "auto",
            {"AWS_BATCH_JOB_ARRAY_INDEX": "3", "AWS_BATCH_JOB_ARRAY_SIZE": "10"},
            None,
            Shard(3, 10),
        ),
        ("auto", {"AWS_BATCH_JOB_ARRAY_INDEX": "3"}, 4, Shard(3, 4)),
        ("auto", {"JOB_COMPLETION_INDEX": "0"}, 2, Shard(0, 2)),
        ("AUTO", {"CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "2"}, None, Shard(1, 2)),
    ],
)
def test_a_shard_is_read_from_its_flag_or_its_engine(
    text: str, env: dict[str, str], shards: int | None, expected: Shard
) -> None:
    assert parse_shard(text, shards=shards, env=env) == expected


@pytest.mark.parametrize(
    ("text", "env", "shards", "message"),
    [
        ("3/3", {}, None, "out of range"),
        ("0/0", {}, None, "out of range"),
        ("-1/2", {}, None, "not a shard"),
        ("a/b", {}, None, "not a shard"),
        ("1/2", {}, 3, "--shards says 3"),
        ("auto", {}, None, "AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE"),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}, None, "--shards N"),
        ("auto", {"JOB_COMPLETION_INDEX": "4"}, 4, "not below the count 4"),
        ("auto", {"CLOUD_RUN_TASK_INDEX": "x", "CLOUD_RUN_TASK_COUNT": "2"}, None, "whole number"),
        ("auto", {"CLOUD_RUN_TASK_INDEX": "0", "JOB_COMPLETION_INDEX": "0"}, 2, "both set"),
        ("auto", {"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "2"}, 3, "but --shards 3"),
    ],
)
def test_a_bad_shard_says_what_is_expected(
    text: str, env: dict[str, str], shards: int | None, message: str
) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        parse_shard(text, shards=shards, env=env)
    assert caught.value.exit_code == 2
