"""DynamoDB tables and S3 objects as sources, through the CLI, on the moto server."""

from __future__ import annotations

import gzip
import io
import json
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import Project

from northmigrate.records import sample
from northmigrate.records.sample import SampleGenerator

pytestmark = pytest.mark.integration
COUNT = 300


def records(count: int = COUNT) -> tuple[list[dict[str, Any]], set[str], set[str], int]:
    """Example records, every 9th one broken; returns them, eligible ids, invalid ids, valid."""
    out: list[dict[str, Any]] = []
    eligible: set[str] = set()
    invalid: set[str] = set()
    for n in range(1, count + 1):
        rec = SampleGenerator(seed=n).record(n)
        if n % 9 == 4:
            way = n % 3
            if way == 0:
                del rec["business"]["ein"]
            elif way == 1:
                rec["owners"][0]["tax_id"] = "123456789"
            else:
                rec["status"] = "pending_docs"
            invalid.add(rec["application_id"])
        elif rec["status"] in ("submitted", "approved"):
            eligible.add(rec["application_id"])
        out.append(rec)
    valid = count - len(invalid)
    assert 0 < len(eligible) < valid  # some ineligible too
    return out, eligible, invalid, valid


def as_item(record: dict[str, Any]) -> dict[str, Any]:
    """As the old service stored it: numbers as N, the product list as a string set."""
    item: dict[str, Any] = json.loads(json.dumps(record))
    item["annual_revenue"] = Decimal(item["annual_revenue"])
    for owner in item["owners"]:
        owner["ownership_pct"] = Decimal(owner["ownership_pct"])
    item["requested_products"] = set(item["requested_products"])
    return item


def create_table(project: Project, name: str, recs: list[dict[str, Any]]) -> None:
    ddb = project.client("dynamodb")
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
    import boto3

    resource = boto3.resource(
        "dynamodb",
        endpoint_url=project.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with resource.Table(name).batch_writer() as batch:
        for rec in recs:
            batch.put_item(Item=as_item(rec))


def record_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [json.loads(m["Body"])["record_id"] for m in messages]


@pytest.fixture
def table(project: Project) -> tuple[Project, str, dict[str, Any]]:
    recs, eligible, invalid, valid = records()
    name = f"{project.name}-old"
    create_table(project, name, recs)
    project.cli("provision", check=True)
    return project, name, {"eligible": eligible, "invalid": invalid, "valid": valid, "recs": recs}


def test_a_table_is_validated_and_enqueued_with_four_segments(
    table: tuple[Project, str, dict[str, Any]],
) -> None:
    project, name, want = table
    report = project.cli_json("validate", f"dynamodb://{name}", "--segments", "4")
    assert (report["read"], report["valid"], report["invalid"]) == (
        COUNT,
        want["valid"],
        len(want["invalid"]),
    )
    assert report["eligible"] == len(want["eligible"])
    assert report["ineligible"] == want["valid"] - len(want["eligible"])
    customer = {r["application_id"]: r["customer_id"] for r in want["recs"]}
    assert {e["record_id"] for e in report["errors"]} == want["invalid"]
    for error in report["errors"]:  # each one names the item by its key
        assert error["line"] is None
        assert error["origin"] == (
            f"dynamodb://{name} customer_id={customer[error['record_id']]},"
            f"application_id={error['record_id']}"
        )

    sent = project.cli_json("enqueue", f"dynamodb://{name}", "--segments", "4")
    assert sent["enqueued"] == len(want["eligible"]) and sent["failed"] == 0
    assert sent["scan"]["segments"] == 4 and sent["scan"]["segments_done"] == 4
    ids = record_ids(project.drain())
    assert len(ids) == len(set(ids))  # exactly once
    assert set(ids) == want["eligible"]

    table_view = project.cli("validate", f"dynamodb://{name}")
    assert f"dynamodb://{name} customer_id=" in table_view.stdout  # positions in the table


def test_filters_narrow_the_scan(table: tuple[Project, str, dict[str, Any]]) -> None:
    project, name, want = table
    approved = sum(r["status"] == "approved" for r in want["recs"])
    simple = project.cli_json("validate", f"dynamodb://{name}", "--filter", "status=approved")
    assert simple["read"] == approved
    raw = project.cli_json(
        "validate",
        f"dynamodb://{name}",
        "--consistent",
        "--filter",
        "#status IN (:a, :b)",
        "--filter-values",
        '{":a": "approved", ":b": "submitted"}',
    )
    assert raw["read"] == raw["eligible"] + raw["invalid"]
    assert raw["eligible"] == len(want["eligible"])


def test_a_killed_enqueue_resumes_with_nothing_missing_then_has_nothing_left(
    table: tuple[Project, str, dict[str, Any]],
) -> None:
    project, name, want = table
    uri = f"dynamodb://{name}?page_size=10"
    state = (
        project.root / ".northmigrate" / "resume" / f"dynamodb-{name}--{project.queue_name}.json"
    )
    process = project.popen("enqueue", uri, "--segments", "4", "--concurrency", "1")
    deadline = time.monotonic() + 60
    moved = False
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists():
            try:
                saved = json.loads(state.read_text())
            except ValueError:
                saved = {}
            if sum(bool(s["start_key"]) or s["done"] for s in saved.get("segments", [])) >= 2:
                moved = True
                break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert moved and process.returncode == -signal.SIGKILL, f"not killed mid-way: {stderr}"
    assert not json.loads(state.read_text())["finished"], state.read_text()
    before = record_ids(project.drain())

    resumed = project.cli_json("enqueue", uri, "--resume")
    assert resumed["scan"]["resumed"] is True and resumed["failed"] == 0
    assert resumed["scan"]["segments"] == 4  # the interrupted run's segmentation
    assert 0 < resumed["enqueued"] < len(want["eligible"]), resumed  # resumed, not restarted
    after = record_ids(project.drain())
    missing = want["eligible"] - set(before) - set(after)
    assert not missing, (sorted(missing), len(before), resumed)  # duplicates allowed, no gaps
    assert set(before) | set(after) == want["eligible"]
    assert json.loads(state.read_text())["finished"]

    again = project.cli_json("enqueue", uri, "--resume")
    assert (again["read"], again["enqueued"]) == (0, 0)
    assert project.drain() == []


def put_export(project: Project, bucket: str, recs: list[dict[str, Any]]) -> None:
    s3 = project.client("s3")
    s3.create_bucket(Bucket=bucket)
    jsonl = io.StringIO()
    sample.write(iter(recs), jsonl, "jsonl")
    csv = io.StringIO()
    sample.write(iter(recs), csv, "csv")
    s3.put_object(Bucket=bucket, Key="exports/", Body=b"")
    s3.put_object(
        Bucket=bucket, Key="exports/a.jsonl.gz", Body=gzip.compress(jsonl.getvalue().encode())
    )
    s3.put_object(Bucket=bucket, Key="exports/b.csv", Body=csv.getvalue().encode())


def test_the_same_records_in_s3_as_gzip_jsonl_and_csv_give_the_same_counts(
    project: Project,
) -> None:
    recs, eligible, invalid, valid = records()
    bucket = project.name
    put_export(project, bucket, recs)
    counts = ("read", "valid", "eligible", "ineligible", "invalid", "duplicates")
    expected = (COUNT, valid, len(eligible), valid - len(eligible), len(invalid), 0)
    line_of = {r["application_id"]: n for n, r in enumerate(recs, start=1)}
    for key, offset in (("exports/a.jsonl.gz", 0), ("exports/b.csv", 1)):
        report = project.cli_json("validate", f"s3://{bucket}/{key}")
        assert tuple(report[c] for c in counts) == expected, key
        for error in report["errors"]:  # the object and the line of each rejection
            assert error["origin"] == f"s3://{bucket}/{key}"
            assert error["line"] == line_of[error["record_id"]] + offset
    both = project.cli_json("validate", f"s3://{bucket}/exports/")
    # the prefix reads a.jsonl.gz then b.csv: the second copy of each valid record is a duplicate
    assert tuple(both[c] for c in counts) == (
        2 * COUNT,
        valid,
        len(eligible),
        valid - len(eligible),
        2 * len(invalid),
        valid,
    )
    project.cli("provision", check=True)
    sent = project.cli_json("enqueue", f"s3://{bucket}/exports/b.csv")
    assert sent["enqueued"] == len(eligible)
    assert set(record_ids(project.drain())) == eligible


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "dynamodb://no-such-table"], "table no-such-table does not exist"),
        (["validate", "s3://no-such-bucket/x.jsonl"], "does not exist"),
        (["validate", "records.jsonl", "--segments", "2"], "--segments applies to dynamodb://"),
        (["enqueue", "records.jsonl", "--resume"], "--resume applies to dynamodb://"),
        (["enqueue", "dynamodb://t", "--from-line", "3"], "--from-line applies to one file"),
    ],
)
def test_unusable_sources_and_misplaced_flags_exit_2(
    project: Project, args: list[str], message: str
) -> None:
    (project.root / "records.jsonl").write_text("{}\n")
    result = project.cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_dry_run_records_nothing_and_a_run_without_resume_starts_over(project: Project) -> None:
    recs, eligible, _, _ = records(20)
    name = f"{project.name}-small"
    create_table(project, name, recs)
    project.cli("provision", check=True)
    dry = project.cli_json("enqueue", f"dynamodb://{name}", "--dry-run", "--resume")
    assert dry["scan"]["state_file"] is None and dry["enqueued"] == 0
    assert not (project.root / ".northmigrate").exists()  # a dry run records nothing
    first = project.cli_json("enqueue", f"dynamodb://{name}")
    assert first["enqueued"] == len(eligible) and first["scan"]["resumed"] is False
    state = Path(first["scan"]["state_file"])
    assert (project.root / state).is_file()
    project.drain()
    fresh = project.cli_json("enqueue", f"dynamodb://{name}")  # no --resume: from the start
    assert fresh["enqueued"] == len(eligible)
    assert len(project.drain()) == len(eligible)
