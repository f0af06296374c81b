"""Volume through the CLI, as a user runs it: a million records validated in flat memory;
20,000 records enqueued to, and drained from, ministack. ``make volume`` runs this file
(``make ministack`` installs the emulator; ``NORTHMIGRATE_REQUIRE_MINISTACK=1`` turns the
skip when it is missing into a failure); ``make test`` runs its small guard,
``tests/integration/test_memory.py``.

``validate`` needs a config (the migration plugin) but no endpoint: its config points at a
port nothing listens on. ``provision``, ``enqueue`` and ``worker`` run against one
ministack for the module (moto scans the whole queue on every call, and would take far too
long here). Wall times are printed; run it with ``-s`` to see them::

    NORTHMIGRATE_MINISTACK=/path/to/ministack .venv/bin/python -m pytest -n 0 -m volume \\
        tests/integration/test_volume.py -q -s
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, ministack_endpoint, peak_rss_mb
from support.samples import write_records

pytestmark = [pytest.mark.volume, pytest.mark.integration]

MILLION = 1_000_000
QUEUED = 20_000
RSS_LIMIT_MB = 150
ELIGIBLE = {"submitted", "approved"}  # northmigrate.examples.onboarding.ELIGIBLE
NOWHERE = "http://127.0.0.1:9"  # validate must not need an endpoint: nothing listens here


@pytest.fixture(scope="module", autouse=True)
def only_when_asked(request: pytest.FixtureRequest) -> None:
    if "volume" not in (request.config.getoption("-m") or ""):
        pytest.skip("a volume test: run it with -m volume")


@pytest.fixture(scope="module")
def ministack(only_when_asked: None) -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


class Clock:
    """Wall time of each step, printed as it ends."""

    def __init__(self, test: str) -> None:
        self.test = test
        print(f"\n{test}")

    def step(self, name: str, started: float, detail: str = "") -> None:
        print(f"  {name}: {time.monotonic() - started:.1f} s{f' ({detail})' if detail else ''}")


def provisioned(ministack: str, root: Path) -> Project:
    """A project with its own queues and table on ministack, provisioned through the CLI."""
    # visibility 60 s (the default): a message waiting in a 16-worker prefetch is not redelivered
    project = Project(root=root, endpoint=ministack, queue_settings={"visibility_timeout": 60})
    report = project.cli_json("provision", check=True)
    assert report["changed"] is True, report
    assert report["queue_url"].endswith(project.queue_name), report
    assert report["dlq_url"].endswith(project.dlq_name), report
    empty = {"visible": 0, "in_flight": 0, "delayed": 0}
    assert project.depth() == empty and project.depth(project.dlq_name) == empty
    project.client("dynamodb").describe_table(TableName=project.table)
    return project


def enqueue_all(project: Project, path: Path, count: int) -> dict[str, Any]:
    report = project.cli_json("enqueue", str(path), check=True)
    assert report["read"] == report["valid"] == report["eligible"] == count, report
    assert report["enqueued"] == count, report
    assert report["ineligible"] == report["invalid"] == report["duplicates"] == 0, report
    assert report["failed"] == report["errors_total"] == 0, report
    assert report["interrupted"] is False and report["resume_from_line"] is None, report
    return report


def table_count(project: Project) -> int:
    ddb = project.client("dynamodb")
    total = 0
    kwargs: dict[str, Any] = {"TableName": project.table, "Select": "COUNT", "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.timeout(900)  # about 40 s of one core; a bound for a machine busy with the rest
def test_validate_a_million_records_stays_under_150_mb(tmp_path: Path) -> None:
    clock = Clock(f"validate of {MILLION:,} records")
    project = Project(root=tmp_path, endpoint=NOWHERE)

    started = time.monotonic()
    small = tmp_path / "small.jsonl"
    write_records(small, 10_000)
    big = tmp_path / "big.jsonl"
    statuses = write_records(big, MILLION)
    eligible = sum(status in ELIGIBLE for status in statuses)
    clock.step("generate", started, f"{big.stat().st_size / 1e6:.0f} MB, {eligible:,} eligible")

    started = time.monotonic()
    base_rss, small_report = peak_rss_mb(project, "validate", str(small))
    assert small_report["valid"] == 10_000, small_report
    clock.step("validate 10,000", started, f"peak RSS {base_rss:.0f} MB")

    started = time.monotonic()
    rss, report = peak_rss_mb(project, "validate", str(big))
    clock.step(
        f"validate {MILLION:,}",
        started,
        f"peak RSS {rss:.0f} MB, reported {report['duration_s']:.1f} s",
    )
    assert report["source"].endswith("big.jsonl"), report
    assert report["read"] == report["valid"] == MILLION, report
    assert report["eligible"] == eligible and report["ineligible"] == MILLION - eligible, report
    assert 0 < eligible < MILLION  # both kinds were counted
    assert report["invalid"] == report["duplicates"] == report["errors_total"] == 0, report
    assert report["errors"] == [], report
    assert "enqueued" not in report and "run_id" not in report  # validate sends nothing
    assert rss < RSS_LIMIT_MB, f"peak RSS {rss:.0f} MB (10,000 records: {base_rss:.0f} MB)"


# About 2 minutes on a quiet 2-core machine: ministack scans the whole queue on each receive
# and each deleted entry. The limit is a bound for a machine busy with the rest of the suite.
@pytest.mark.timeout(900)
def test_enqueue_and_drain_20000_records_on_ministack(ministack: str, tmp_path: Path) -> None:
    """Every record enqueued once (the queue holds exactly 20,000 messages, and the worker
    receives each once: a duplicate would be received, a missing one would leave the table
    short), and every one migrated."""
    clock = Clock(f"enqueue and worker over {QUEUED:,} records on ministack")
    started = time.monotonic()
    project = provisioned(ministack, tmp_path)
    clock.step("provision", started)
    source = tmp_path / "records.jsonl"
    write_records(source, QUEUED, status="approved")

    started = time.monotonic()
    report = enqueue_all(project, source, QUEUED)
    clock.step("enqueue", started, f"reported {report['duration_s']:.1f} s")
    assert project.depth() == {"visible": QUEUED, "in_flight": 0, "delayed": 0}

    started = time.monotonic()
    worker = project.cli_json("worker", "--until-empty", "--concurrency", "16", check=True)
    clock.step(
        "worker --until-empty --concurrency 16",
        started,
        f"reported {worker['duration_s']:.1f} s, {worker['rate_per_s']:.0f} records/s",
    )
    assert worker["queue"] == project.queue_name, worker
    assert worker["concurrency"] == 16, worker
    assert worker["succeeded"] == QUEUED, worker
    assert worker["received"] == QUEUED, worker  # no redelivery
    assert worker["dead_lettered"] == worker["retried"] == 0, worker
    assert worker["abandoned"] == worker["delete_failed"] == 0, worker
    assert worker["reasons"] == [] and worker["stopped"] == "empty", worker

    empty = {"visible": 0, "in_flight": 0, "delayed": 0}
    assert project.depth() == empty
    assert project.depth(project.dlq_name) == empty
    started = time.monotonic()
    items = table_count(project)
    clock.step("scan the table (Select=COUNT)", started, f"{items:,} items")
    assert items == QUEUED
