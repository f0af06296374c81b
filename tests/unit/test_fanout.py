"""The fan-out's child and driver on in-process moto (S3, SQS) and botocore's Stubber
(Step Functions): a child sends its shard once, stops short of its timeout and resumes
from its state, is not retried for a source it cannot read; the driver starts the state
machine with the shards, follows the map run, adds the shards' reports up."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.config import Settings, load_settings
from northmigrate.enqueue import fanout, fanout_resume
from northmigrate.enqueue.child import ShardFailed, ShardIncomplete, margin_for, run_shard
from northmigrate.enqueue.job import EnqueueReport
from northmigrate.enqueue.store import RunStore
from northmigrate.errors import InputError, Interrupted
from northmigrate.plugin import Migration
from northmigrate.sources.s3 import listing_of

SOURCE = "s3://exports/in/"


class Row(BaseModel):
    id: str
    amount: str


def record_lines(first: int, count: int) -> bytes:
    lines = []
    for n in range(first, first + count):
        if n % 10 == 0:
            lines.append(f'{{"id": "R{n}"')  # not JSON: a reject
        else:
            lines.append(json.dumps({"id": f"R{n}", "amount": "10.10"}))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def world(mocked_aws: None, tmp_path: Path) -> tuple[AwsClients, Settings]:
    path = tmp_path / "c.toml"
    path.write_text(
        '[aws]\nregion = "us-east-1"\n[queue]\nname = "orders"\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
    )
    settings = load_settings(path, env={})
    clients = AwsClients(settings.aws)
    clients.client("sqs").create_queue(QueueName="orders")
    s3 = clients.client("s3")
    for bucket in ("exports", "fan-store"):
        s3.create_bucket(Bucket=bucket)
    for number in range(3):
        s3.put_object(
            Bucket="exports", Key=f"in/{number}.jsonl", Body=record_lines(100 * number + 1, 25)
        )
    return clients, settings


def sent(clients: AwsClients) -> list[str]:
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName="orders")["QueueUrl"]
    ids: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return ids
        ids += [json.loads(m["Body"])["record_id"] for m in got]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in got],
        )


def event(shard: str, run: str = "r1") -> dict[str, str]:
    return {"source": SOURCE, "shard": shard, "run": run, "store": RunStore("fan-store", run).uri}


ROWS = Migration(name="rows", model=Row, key="id", handler=lambda record, ctx: None)


def run_item(
    clients: AwsClients,
    settings: Settings,
    item: dict[str, Any],
    tmp_path: Path,
    migration: Migration[Any] = ROWS,
    remaining: Any = lambda: 900.0,
) -> dict[str, Any]:
    """What the Map's child does with one item."""
    return run_shard(
        item,
        settings=settings,
        clients=clients,
        migration=migration,
        remaining_s=remaining,
        margin_s=60.0,
        workdir=tmp_path,
        poll_s=0.01,
    )


def child(
    clients: AwsClients,
    settings: Settings,
    shard: str,
    tmp_path: Path,
    migration: Migration[Any],
    remaining: Any = lambda: 900.0,
    source: str = SOURCE,
) -> dict[str, Any]:
    item = event(shard) | {"source": source}
    return run_item(clients, settings, item, tmp_path, migration, remaining)


EVERY = {f"R{100 * o + n}" for o in range(3) for n in range(1, 26) if (100 * o + n) % 10}


def test_the_shards_send_every_record_once_and_report_their_counts(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    counts = [child(clients, settings, f"{n}/2", tmp_path, ROWS) for n in range(2)]
    assert sum(c["enqueued"] for c in counts) == len(EVERY) == 69
    assert sum(c["invalid"] for c in counts) == 6
    assert all("errors" not in c for c in counts)  # no record ids in Step Functions' history
    assert sorted(sent(clients)) == sorted(EVERY)
    again = child(clients, settings, "1/2", tmp_path, ROWS)  # a retry after it finished
    assert again == counts[1] and sent(clients) == []
    report = json.loads(
        clients.client("s3")
        .get_object(Bucket="fan-store", Key="northmigrate/fan-out/r1/shard-0-of-2/report.json")[
            "Body"
        ]
        .read()
    )
    assert report["rejects"] and report["errors"][0]["error"]
    rejects = report["rejects"][0].removeprefix("s3://fan-store/")
    body = clients.client("s3").get_object(Bucket="fan-store", Key=rejects)
    assert body.get("ServerSideEncryption") == "AES256"
    assert all(json.loads(line)["line"] % 10 == 0 for line in body["Body"].read().splitlines())


def test_a_child_short_of_time_stops_saves_its_place_and_its_retry_resumes_there(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    told = threading.Event()
    seen = [0]

    def slow(row: Row) -> bool:
        seen[0] += 1
        if seen[0] >= 12:  # the clock runs out from record 12 on, each record now slow
            told.wait(10)
            time.sleep(0.05)  # 63 records left: seconds for the deadline's thread to act
        return True

    def remaining() -> float:
        if seen[0] >= 12:
            told.set()
            return 1.0
        return 900.0

    migration = Migration(
        name="rows", model=Row, key="id", handler=lambda r, c: None, eligible=slow
    )
    with pytest.raises(ShardIncomplete, match="resumes from line"):
        child(clients, settings, "0/1", tmp_path, migration, remaining)
    first = sent(clients)
    assert 12 <= len(first) < len(EVERY)
    resumed = child(clients, settings, "0/1", tmp_path, ROWS)
    assert resumed["attempts"] == 2 and resumed["enqueued"] == len(EVERY)
    rest = sent(clients)
    assert sorted(first + rest) == sorted(EVERY)  # every record once, across both attempts


def test_a_source_the_child_cannot_read_is_not_retried(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    with pytest.raises(ShardFailed, match="no records to read"):
        child(clients, settings, "0/1", tmp_path, ROWS, source="s3://exports/nothing-here/")
    key = "northmigrate/fan-out/r1/shard-0-of-1/state.json"
    state = json.loads(clients.client("s3").get_object(Bucket="fan-store", Key=key)["Body"].read())
    assert state["exit_code"] == 2


def test_a_child_stops_a_fifth_of_its_time_before_the_end() -> None:
    assert margin_for(900) == 120 and margin_for(60) == 12 and margin_for(10) == 5


# -- the driver --------------------------------------------------------------------------------


def stubbed_sfn() -> tuple[Any, Stubber]:
    sfn = boto3.client(
        "stepfunctions", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    return sfn, Stubber(sfn)


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:orders-fan-out"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:orders-fan-out:r1"
MAP_RUN = "arn:aws:states:us-east-1:123456789012:mapRun:orders-fan-out/Shards:1"


def described(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "executionArn": EXECUTION,
        "stateMachineArn": MACHINE,
        "status": status,
        "startDate": "2026-12-06T00:00:00Z",
        **extra,
    }


def counts(**values: int) -> dict[str, Any]:
    base = dict.fromkeys(
        (
            "pending",
            "running",
            "succeeded",
            "failed",
            "timedOut",
            "aborted",
            "total",
            "resultsWritten",
        ),
        0,
    )
    return {
        "mapRunArn": MAP_RUN,
        "executionArn": EXECUTION,
        "status": "RUNNING",
        "startDate": "2026-12-06T00:00:00Z",
        "maxConcurrency": 100,
        "toleratedFailurePercentage": 100.0,
        "toleratedFailureCount": 0,
        "itemCounts": base | values,
        "executionCounts": base | values,
    }


def test_the_driver_starts_the_shards_follows_the_map_run_and_adds_the_reports_up(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    s3 = clients.client("s3")
    sfn, stub = stubbed_sfn()
    expected_input = json.dumps(
        {"bucket": "fan-store", "key": "northmigrate/fan-out/r1/shards.json"}
    )
    stub.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": "2026-12-06T00:00:00Z"},
        {"stateMachineArn": MACHINE, "name": "r1", "input": expected_input},
    )
    listed = {
        "mapRuns": [
            {
                "executionArn": EXECUTION,
                "mapRunArn": MAP_RUN,
                "stateMachineArn": MACHINE,
                "startDate": "2026-12-06T00:00:00Z",
            }
        ]
    }
    stub.add_response("describe_execution", described("RUNNING"), {"executionArn": EXECUTION})
    stub.add_response("list_map_runs", {"mapRuns": []}, {"executionArn": EXECUTION})
    stub.add_response("describe_execution", described("RUNNING"), {"executionArn": EXECUTION})
    stub.add_response("list_map_runs", listed, {"executionArn": EXECUTION})
    stub.add_response("describe_map_run", counts(total=2, running=2), {"mapRunArn": MAP_RUN})
    stub.add_response("describe_execution", described("SUCCEEDED"), {"executionArn": EXECUTION})
    stub.add_response("list_map_runs", listed, {"executionArn": EXECUTION})
    stub.add_response("describe_map_run", counts(total=2, succeeded=2), {"mapRunArn": MAP_RUN})
    seen: list[fanout.MapProgress] = []
    with stub:
        run = fanout.start(
            sfn, s3, machine_arn=MACHINE, source=SOURCE, shards=2, bucket="fan-store", run_id="r1"
        )
        items = json.loads(
            s3.get_object(Bucket="fan-store", Key=run.store.shards_key)["Body"].read()
        )
        assert [i["shard"] for i in items] == ["0/2", "1/2"]
        assert {i["store"] for i in items} == {"s3://fan-store/northmigrate/fan-out/r1/"}
        for item in items:  # what the children do
            child(clients, settings, item["shard"], tmp_path, ROWS)
        last = fanout.wait(sfn, run, on_progress=seen.append, sleep=lambda _: None, poll_s=0)
        stub.assert_no_pending_responses()
    assert last.status == "SUCCEEDED" and [p.succeeded for p in seen] == [0, 0, 2]
    report = fanout.totals(s3, run, EnqueueReport(run_id="r1", source=SOURCE))
    assert report.error is None and report.enqueued == 69 and report.tally.invalid == 6
    assert report.tally.read == 75 and len(report.tally.errors) == 6
    assert len(run.rejects) == 2


def test_unfinished_shards_are_named_and_set_the_exit_code(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    s3 = clients.client("s3")
    run = fanout.FanOut(EXECUTION, RunStore("fan-store", "r1"), SOURCE, 3)
    child(clients, settings, "0/3", tmp_path, ROWS)
    with pytest.raises(ShardFailed):
        child(clients, settings, "1/3", tmp_path, ROWS, source="s3://exports/in/0.jsonl.bz2")
    report = fanout.totals(s3, run, EnqueueReport(run_id="r1", source=SOURCE))
    assert isinstance(report.error, fanout.FanOutIncomplete)
    assert report.error.exit_code == 2
    assert "2 of 3 shards did not finish" in str(report.error)
    assert "shard 1/3: " in str(report.error) and "shard 2/3: it never started" in str(report.error)
    assert report.enqueued > 0


def test_stopping_the_driver_stops_the_execution() -> None:
    sfn, stub = stubbed_sfn()
    run = fanout.FanOut(EXECUTION, RunStore("fan-store", "r1"), SOURCE, 1)
    stub.add_response("describe_execution", described("RUNNING"), {"executionArn": EXECUTION})
    stub.add_response("list_map_runs", {"mapRuns": []}, {"executionArn": EXECUTION})
    stub.add_response(
        "stop_execution",
        {"stopDate": "2026-12-06T00:00:00Z"},
        {"executionArn": EXECUTION, "cause": "stopped by the user"},
    )
    stop = threading.Event()
    stop.set()
    with stub, pytest.raises(Exception, match="stopped the fan-out r1") as caught:
        fanout.wait(sfn, run, stop=stop)
    assert caught.value.exit_code == 130  # type: ignore[attr-defined]
    hint = caught.value.hint  # type: ignore[attr-defined]
    assert f"northmigrate enqueue {SOURCE} --resume-fan-out r1" in hint


def test_default_shards_keep_each_well_inside_lambdas_time() -> None:
    mib = 1024 * 1024
    assert fanout.default_shards(0) == 1
    assert fanout.default_shards(256 * mib) == 1
    assert fanout.default_shards(256 * mib + 1) == 2
    assert fanout.default_shards(10**15) == fanout.MAX_SHARDS
    with pytest.raises(InputError):
        RunStore.from_uri("s3://b/elsewhere/")
    assert RunStore.from_uri("s3://b/northmigrate/fan-out/r9/") == RunStore("b", "r9")


# -- resuming a run (--resume-fan-out) ---------------------------------------------------------


def start(sfn: Any, s3: Any, shards: int, digest: str | None) -> fanout.FanOut:
    return fanout.start(
        sfn,
        s3,
        machine_arn=MACHINE,
        source=SOURCE,
        shards=shards,
        bucket="fan-store",
        run_id="r1",
        listing=digest,
    )


def resume(sfn: Any, s3: Any, **given: Any) -> fanout.FanOut:
    args = {"machine_arn": MACHINE, "source": SOURCE, "bucket": "fan-store", "run_id": "r1"}
    return fanout_resume.resume(sfn, s3, **(args | given))


def missing_execution(stub: Stubber, name: str) -> None:
    stub.add_client_error(
        "describe_execution",
        service_error_code="ExecutionDoesNotExist",
        service_message="Execution Does Not Exist",
        expected_params={"executionArn": fanout_resume.execution_arn(MACHINE, name)},
    )


LONG_AGO = datetime(2026, 12, 5, tzinfo=UTC)


def execution(stub: Stubber, name: str, status: str, stopped: datetime | None = LONG_AGO) -> None:
    arn = fanout_resume.execution_arn(MACHINE, name)
    answer = described(status) | {"executionArn": arn}
    if stopped is not None and status != "RUNNING":
        answer["stopDate"] = stopped
    stub.add_response("describe_execution", answer, {"executionArn": arn})


def items_at(clients: AwsClients, key: str) -> list[dict[str, Any]]:
    body = clients.client("s3").get_object(Bucket="fan-store", Key=key)["Body"].read()
    return list(json.loads(body))


def listing(clients: AwsClients, source: str = SOURCE) -> str | None:
    from northmigrate.sources import open_source

    opened = open_source(source, clients=clients)
    opened.close()
    return listing_of(opened)


def test_resuming_runs_only_the_unfinished_shards_each_from_where_it_stopped(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    s3 = clients.client("s3")
    sfn, stub = stubbed_sfn()
    digest = listing(clients)
    assert digest and len(digest) == 32
    stub.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": "2026-12-06T00:00:00Z"},
        {"stateMachineArn": MACHINE, "name": "r1", "input": ANY},
    )
    with stub:
        run = start(sfn, s3, 3, digest)
    first = items_at(clients, run.store.shards_key)
    assert {i["listing"] for i in first} == {digest} and run.running == ["0/3", "1/3", "2/3"]
    run_item(clients, settings, first[0], tmp_path)  # shard 0 finishes

    class Stalls:  # shard 1 runs short of time after a few records: it saves its place
        seen = 0
        told = threading.Event()

        @classmethod
        def remaining(cls) -> float:
            if cls.seen >= 5:
                cls.told.set()
                return 1.0
            return 900.0

    def slow(row: Row) -> bool:
        Stalls.seen += 1
        if Stalls.seen >= 5:
            Stalls.told.wait(10)
            time.sleep(0.05)
        return True

    stalling = Migration(name="rows", model=Row, key="id", handler=lambda r, c: None, eligible=slow)
    with pytest.raises(ShardIncomplete):  # and its retries are spent
        run_item(clients, settings, first[1], tmp_path, stalling, Stalls.remaining)
    before = sent(clients)  # shard 2 never started (the run was stopped, or its retries spent)
    report = fanout.totals(s3, run, EnqueueReport(run_id="r1", source=SOURCE))
    assert isinstance(report.error, fanout.FanOutIncomplete)
    assert "2 of 3 shards did not finish" in str(report.error)
    assert f"northmigrate enqueue {SOURCE} --resume-fan-out r1" in (report.error.hint or "")

    execution(stub, "r1", "SUCCEEDED")  # the Map tolerates its children's failures
    missing_execution(stub, "r1-r1")
    stub.add_response(
        "start_execution",
        {"executionArn": fanout_resume.execution_arn(MACHINE, "r1-r1"), "startDate": "2026-12-06"},
        {
            "stateMachineArn": MACHINE,
            "name": "r1-r1",
            "input": json.dumps(
                {"bucket": "fan-store", "key": "northmigrate/fan-out/r1/shards-r1.json"}
            ),
        },
    )
    with stub:
        resumed = resume(sfn, s3, listing=digest)
        stub.assert_no_pending_responses()
    assert resumed.action == "resumed" and resumed.running == ["1/3", "2/3"]
    assert resumed.execution_arn.endswith(":execution:orders-fan-out:r1-r1")
    again = items_at(clients, "northmigrate/fan-out/r1/shards-r1.json")
    assert again == first[1:]  # the same items: the same run, store and listing
    counts = [run_item(clients, settings, item, tmp_path) for item in again]
    assert counts[0]["attempts"] == 2  # shard 1 resumed from its state, not from the start
    after = sent(clients)
    assert sorted(before + after) == sorted(EVERY)  # every record once over both executions
    report = fanout.totals(s3, resumed, EnqueueReport(run_id="r1", source=SOURCE))
    assert report.error is None and report.enqueued == len(EVERY) and report.tally.read == 75

    execution(stub, "r1", "SUCCEEDED")
    execution(stub, "r1-r1", "SUCCEEDED")
    missing_execution(stub, "r1-r2")
    with stub:  # a third time: every shard finished, nothing is started
        done = resume(sfn, s3, listing=digest)
        stub.assert_no_pending_responses()
    assert done.action == "finished" and done.running == []


def test_resuming_a_run_whose_execution_still_runs_follows_it_and_starts_nothing(
    world: tuple[AwsClients, Settings],
) -> None:
    clients, _ = world
    s3 = clients.client("s3")
    sfn, stub = stubbed_sfn()
    digest = listing(clients)
    stub.add_response(
        "start_execution", {"executionArn": EXECUTION, "startDate": "2026-12-06"}, None
    )
    execution(stub, "r1", "FAILED")
    execution(stub, "r1-r1", "RUNNING")  # another operator's resume, still at work
    missing_execution(stub, "r1-r2")
    with stub:
        start(sfn, s3, 2, digest)
        run = resume(sfn, s3, listing=digest)
        stub.assert_no_pending_responses()
    assert run.action == "followed" and run.execution_arn == fanout_resume.execution_arn(
        MACHINE, "r1-r1"
    )
    assert run.shards == 2


def test_a_source_that_changed_since_the_run_started_is_refused_by_the_resume_and_each_child(
    world: tuple[AwsClients, Settings], tmp_path: Path
) -> None:
    clients, settings = world
    s3 = clients.client("s3")
    sfn, stub = stubbed_sfn()
    digest = listing(clients)
    stub.add_response(
        "start_execution", {"executionArn": EXECUTION, "startDate": "2026-12-06"}, None
    )
    with stub:
        run = start(sfn, s3, 2, digest)
    items = items_at(clients, run.store.shards_key)
    # the same size, other bytes: only the ETag tells (the cuts would fall elsewhere otherwise)
    s3.put_object(Bucket="exports", Key="in/1.jsonl", Body=record_lines(901, 25))
    now = listing(clients)
    assert now != digest
    with pytest.raises(ShardFailed, match="changed since the run started"):
        run_item(clients, settings, items[0], tmp_path)
    assert sent(clients) == []  # it read nothing
    with stub, pytest.raises(InputError, match="changed since the fan-out run r1 started"):
        resume(sfn, s3, listing=now)
    with stub, pytest.raises(InputError, match="read s3://exports/in/, not s3://exports/"):
        resume(sfn, s3, source="s3://exports/", listing=now)
    with pytest.raises(InputError, match="is not a fan-out run id"):
        resume(sfn, s3, run_id="r1)", listing=digest)
    with stub, pytest.raises(InputError, match="no fan-out run r9"):
        resume(sfn, s3, run_id="r9", listing=digest)
    s3.put_object(Bucket="fan-store", Key="northmigrate/fan-out/r8/shards.json", Body=b"{[")
    with stub, pytest.raises(InputError, match="is not a fan-out's items"):
        resume(sfn, s3, run_id="r8", listing=digest)


def test_resuming_waits_until_the_children_of_the_last_execution_have_surely_ended(
    world: tuple[AwsClients, Settings],
) -> None:
    clients, _ = world
    s3 = clients.client("s3")
    sfn, stub = stubbed_sfn()
    digest = listing(clients)
    stopped = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # Ctrl-C; the resume comes 10 s later
    stub.add_response(
        "start_execution", {"executionArn": EXECUTION, "startDate": "2026-12-06"}, None
    )
    execution(stub, "r1", "ABORTED", stopped)
    missing_execution(stub, "r1-r1")
    execution(stub, "r1", "ABORTED", None)  # an emulator that gives no stop time
    missing_execution(stub, "r1-r1")
    waited: list[float] = []
    with stub:
        start(sfn, s3, 2, digest)
        for _ in range(2):  # Ctrl-C while it waits: nothing is started
            with pytest.raises(Interrupted, match="before resuming the fan-out r1"):
                resume(
                    sfn,
                    s3,
                    listing=digest,
                    function_timeout_s=60,
                    wait=lambda s: waited.append(s) or True,
                    now=lambda: stopped + timedelta(seconds=10),
                )
        stub.assert_no_pending_responses()
    assert waited == [50, 60]
    now = datetime.now(UTC)
    assert fanout_resume.settle_s({"status": "ABORTED", "stopDate": LONG_AGO}, 900, now) == 0
    # every child's task of an execution that succeeded was answered: nothing still runs
    assert fanout_resume.settle_s({"status": "SUCCEEDED", "stopDate": now}, 900, now) == 0
    assert fanout_resume.settle_s({"status": "TIMED_OUT", "stopDate": now}, 900, now) == 900


def test_every_way_an_s3_source_opens_has_its_listing_and_a_changed_one_is_refused(
    world: tuple[AwsClients, Settings],
) -> None:
    import gzip

    from northmigrate.sources import open_source
    from northmigrate.sources.base import SourceError
    from northmigrate.sources.shard import Shard

    clients, _ = world
    s3 = clients.client("s3")
    s3.put_object(Bucket="exports", Key="gz/all.jsonl.gz", Body=gzip.compress(record_lines(1, 5)))
    for uri in (SOURCE, "s3://exports/in/0.jsonl", "s3://exports/gz/all.jsonl.gz"):
        whole = open_source(uri, clients=clients)
        part = open_source(uri, clients=clients, shard=Shard(1, 2))  # cut, or read strided
        digest = listing_of(whole)
        assert digest is not None and listing_of(part) == digest, uri
        open_source(uri, clients=clients, shard=Shard(0, 2), listing=digest).close()
        with pytest.raises(SourceError, match="changed since the run started"):
            open_source(uri, clients=clients, listing="0" * 32)
        whole.close()
        part.close()
