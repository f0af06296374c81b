"""``--segments`` is bounded by what the table can use, and the first SIGINT or SIGTERM stops
a table scan (validate and enqueue) at once, whether items are coming or not."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.aws import AwsClients
from northmigrate.config import AwsSettings
from northmigrate.sources import ScanOptions
from northmigrate.sources.dynamodb import MAX_SEGMENTS, open_table, usable_segments
from tests.helpers import Project, cli_env, create_table
from tests.support.proxy import FaultPlan, FaultProxy

MIB = 1024 * 1024
DEADLINE_S = 60.0  # generous: a loaded machine


class Described:
    """A DynamoDB client that only describes a table of the given counts."""

    def __init__(self, items: int, size: int) -> None:
        self.table = {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "ItemCount": items,
            "TableSizeBytes": size,
        }

    def describe_table(self, **kwargs: Any) -> Any:
        return {"Table": self.table}


class FakeClients:
    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb

    def client(self, name: str) -> Any:
        assert name == "dynamodb"
        return self.ddb


@given(
    st.integers(0, 10**9),
    st.integers(0, 10**13),
    st.integers(1, 1_000_000),
)
@settings(max_examples=300, deadline=None)
def test_segments_never_exceed_what_the_table_can_use(items: int, size: int, asked: int) -> None:
    usable = usable_segments(items, size)
    assert usable >= MAX_SEGMENTS  # stale counts never starve a scan
    assert usable <= max(MAX_SEGMENTS, items)  # no more segments than items
    assert usable <= max(MAX_SEGMENTS, math.ceil(size / MIB))  # nor than MiB of table
    source = open_table(FakeClients(Described(items, size)), "t", ScanOptions(segments=asked))  # type: ignore[arg-type]
    assert source.state.total_segments == min(asked, usable)
    assert len(source.state.segments) == source.state.total_segments
    if asked > usable:
        assert source.notice is not None and f"--segments {asked}" in source.notice
        assert f"in {usable} segments" in source.notice
    else:
        assert source.notice is None


def test_a_million_segments_on_a_small_table_is_a_small_scan(
    mocked_aws: None, tmp_path: Path
) -> None:
    """The reported case: 30 items, --segments 1000000; the state holds 32 segments (a few
    KiB, not 112 MB), every item is read once, and a resume with the same flag is accepted."""
    clients = AwsClients(AwsSettings(region="us-east-1"))
    ddb = clients.client("dynamodb")
    create_table(ddb, "small")
    for n in range(30):
        ddb.put_item(TableName="small", Item={"pk": {"S": f"k{n:02d}"}})
    state = tmp_path / "state.json"
    options = ScanOptions(segments=1_000_000, state_file=state, queue_name="q")
    source = open_table(clients, "small", options)
    assert source.state.total_segments == MAX_SEGMENTS
    assert sorted(item.data["pk"] for item in source if item.data) == [
        f"k{n:02d}" for n in range(30)
    ]
    assert state.stat().st_size < 64 * 1024
    again = open_table(clients, "small", dataclasses.replace(options, resume=True))
    assert again.state.total_segments == MAX_SEGMENTS and again.resumed


def _table(project: Project, name: str, count: int) -> None:
    ddb = project.client("dynamodb")
    create_table(ddb, name)
    for n in range(count):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{n:02d}"}})


@pytest.mark.parametrize(
    ("command", "signum"), [("validate", signal.SIGTERM), ("enqueue", signal.SIGINT)]
)
def test_the_first_signal_stops_a_table_scan_that_gives_nothing(
    project: Project, command: str, signum: int
) -> None:
    """Every Scan call is throttled (botocore and the scan retry it for minutes): no item
    comes, and only the signal can end the run. One signal, and it ends, exit 130, with its
    summary."""
    name = f"{project.name}-src"
    _table(project, name, 30)
    project.cli("provision", check=True)
    plan = FaultPlan(throttle=1.0, only_targets=("DynamoDB_20120810.Scan",))
    with FaultProxy(project.endpoint, plan) as proxy:
        process = subprocess.Popen(
            [sys.executable, "-m", "northmigrate", "--endpoint-url", proxy.url, command,
             f"dynamodb://{name}", "--segments", "1000000", "--output", "json"],
            cwd=project.root, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + DEADLINE_S
            while proxy.counts["throttle"] < 3:  # the scan has started, and gets nothing
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the scan never started"
                time.sleep(0.05)
            process.send_signal(signum)
            out, err = process.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError(f"one signal did not stop {command}") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] is True and report["read"] == 0
    assert "more than table" in err  # the segments were lowered, and the user told
