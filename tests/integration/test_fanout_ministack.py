"""The fan-out end to end on ministack, which runs Step Functions' Distributed Map and the
Lambda children as local processes: ``deploy`` with ``deploy.fan_out`` makes the enqueue
function and the state machine, ``enqueue s3://… --fan-out 3`` runs three children, and one
of them runs short of time once: it stops, saves where, is retried and resumes there, so
every record reaches the queue exactly once. And a shard whose retries ran out (it runs short
of time at the same record every attempt) is finished, once the fix ships, by
``--resume-fan-out``, which runs only that shard, from where it stopped. Run them with
``make volume`` or::

    .venv/bin/python -m pytest -m volume tests/integration/test_fanout_ministack.py -q
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, client, ministack_endpoint

pytestmark = [pytest.mark.volume, pytest.mark.integration]

PLUGIN = """
import os
import time

from pydantic import BaseModel

from northmigrate import Migration

MARKER = {marker!r}
BLOCKED = {blocked!r}


class Row(BaseModel):
    id: str
    amount: str


def eligible(row):
    # the first time R117 is checked, and at every record from R117 to R140 while BLOCKED
    # exists, the child's clock runs short (30 s, it stops at 6 s left)
    late = row.id.startswith("R1") and 117 <= int(row.id[1:]) <= 140
    if (row.id == "R117" and not os.path.exists(MARKER)) or (late and os.path.exists(BLOCKED)):
        open(MARKER, "w").close()
        time.sleep(25)
    return True


migration = Migration(
    name="rows", model=Row, key="id", handler=lambda record, ctx: None, eligible=eligible
)
"""


def deployed(tmp_path: Path, url: str, retries: int = 10) -> tuple[Project, Any]:
    """A project with the fan-out deployed on ministack, 3 objects of 40 records each."""
    project = Project(root=tmp_path, endpoint=url)
    code = PLUGIN.format(marker=str(tmp_path / "slowed-once"), blocked=str(tmp_path / "blocked"))
    project.plugin = project.write_plugin("rows_plugin", code) + ":migration"
    project.options.clear()
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\nfan_out = true\n'
        + 'fan_out_bucket = "fan-store"\nfan_out_sources = ["s3://old-exports/in/"]\n'
        + f"fan_out_timeout_s = 30\nfan_out_retries = {retries}\n"
    )
    s3 = client("s3", url)
    for bucket in ("old-exports", "fan-store"):
        s3.create_bucket(Bucket=bucket)
    for number in range(3):
        lines = [
            json.dumps({"id": f"R{100 * number + n}", "amount": "12.30"}) for n in range(1, 41)
        ]
        body = ("\n".join(lines) + "\n").encode()
        s3.put_object(Bucket="old-exports", Key=f"in/{number}.jsonl", Body=body)

    project.cli("provision", check=True)
    deployed = project.cli_json("deploy", check=True)
    assert deployed["state_machine"].endswith(":stateMachine:" + project.name + "-fan-out")
    project.cli("tap", "close", "--reason", "count the messages", check=True)
    return project, s3


@pytest.mark.timeout(900)
def test_a_fan_out_on_step_functions_sends_every_record_once_with_a_shard_resumed(
    tmp_path: Path,
) -> None:
    with ministack_endpoint() as url:
        project, s3 = deployed(tmp_path, url)
        result = project.cli("enqueue", "s3://old-exports/in/", "--fan-out", "3", "-o", "json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["fan_out"]["status"] == "SUCCEEDED" and summary["fan_out"]["shards"] == 3
        assert summary["enqueued"] == summary["read"] == 120 and summary["failed"] == 0
        assert (tmp_path / "slowed-once").exists()

        prefix = summary["fan_out"]["store"].removeprefix("s3://fan-store/")
        attempts = {}
        for n in range(3):
            key = f"{prefix}shard-{n}-of-3/report.json"
            report = json.loads(s3.get_object(Bucket="fan-store", Key=key)["Body"].read())
            attempts[report["shard"]] = report["attempts"]
        assert sorted(attempts.values()) == [1, 1, 2]  # one shard stopped once and resumed

        ids = [json.loads(m["Body"])["record_id"] for m in project.drain(project.queue_name)]
        assert len(ids) == 120 and len(set(ids)) == 120  # every record, once


@pytest.mark.timeout(900)
def test_a_shard_whose_retries_ran_out_is_finished_by_resuming_the_run(tmp_path: Path) -> None:
    with ministack_endpoint() as url:
        project, s3 = deployed(tmp_path, url, retries=1)
        (tmp_path / "blocked").touch()  # shard 1/3 runs short of time from R117, every attempt
        failed = project.cli("enqueue", "s3://old-exports/in/", "--fan-out", "3", "-o", "json")
        assert failed.returncode == 1, failed.stderr
        first = json.loads(failed.stdout)
        assert (
            80 + 17 <= first["enqueued"] < 120 and "1 of 3 shards did not finish" in first["error"]
        )
        stderr = " ".join(failed.stderr.split())
        command = f"northmigrate enqueue s3://old-exports/in/ --resume-fan-out {first['run_id']}"
        assert command in stderr, stderr

        (tmp_path / "blocked").unlink()  # the fix ships
        resumed = project.cli(*command.split()[1:], "-o", "json")
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        assert summary["run_id"] == first["run_id"]
        assert summary["fan_out"]["action"] == "resumed" and summary["fan_out"]["ran"] == ["1/3"]
        assert summary["enqueued"] == summary["read"] == 120 and summary["failed"] == 0
        prefix = summary["fan_out"]["store"].removeprefix("s3://fan-store/")
        key = f"{prefix}shard-1-of-3/report.json"
        report = json.loads(s3.get_object(Bucket="fan-store", Key=key)["Body"].read())
        assert report["attempts"] == 3  # two in the first execution, one resumed from R117

        ids = [json.loads(m["Body"])["record_id"] for m in project.drain(project.queue_name)]
        expected = {f"R{100 * o + n}" for o in range(3) for n in range(1, 41)}
        assert len(ids) == 120 and set(ids) == expected  # every record, once

        again = project.cli_json(*command.split()[1:], check=True)
        assert again["fan_out"]["action"] == "finished" and again["enqueued"] == 120
