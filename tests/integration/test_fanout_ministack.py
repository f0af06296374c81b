"""The fan-out end to end on ministack, which runs Step Functions' Distributed Map and the
Lambda children as local processes: ``deploy`` with ``deploy.fan_out`` makes the enqueue
function and the state machine, ``enqueue s3://… --fan-out 3`` runs three children, and one
of them runs short of time once: it stops, saves where, is retried and resumes there, so
every record reaches the queue exactly once. Run it with ``make volume`` or::

    .venv/bin/python -m pytest -m volume tests/integration/test_fanout_ministack.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Project, client, ministack_endpoint

pytestmark = [pytest.mark.volume, pytest.mark.integration]

PLUGIN = """
import os
import time

from pydantic import BaseModel

from northmigrate import Migration

MARKER = {marker!r}


class Row(BaseModel):
    id: str
    amount: str


def eligible(row):
    # the first time R117 is checked, the child's clock runs short (30 s, stops at 6 s left)
    if row.id == "R117" and not os.path.exists(MARKER):
        open(MARKER, "w").close()
        time.sleep(25)
    return True


migration = Migration(
    name="rows", model=Row, key="id", handler=lambda record, ctx: None, eligible=eligible
)
"""


@pytest.mark.timeout(900)
def test_a_fan_out_on_step_functions_sends_every_record_once_with_a_shard_resumed(
    tmp_path: Path,
) -> None:
    with ministack_endpoint() as url:
        project = Project(root=tmp_path, endpoint=url)
        project.plugin = (
            project.write_plugin("rows_plugin", PLUGIN.format(marker=str(tmp_path / "slowed-once")))
            + ":migration"
        )
        project.options.clear()
        path = project.write_config()
        path.write_text(
            path.read_text()
            + '\n[deploy]\narch = "host"\nbundle_boto3 = true\nfan_out = true\n'
            + 'fan_out_bucket = "fan-store"\nfan_out_sources = ["s3://old-exports/in/"]\n'
            + "fan_out_timeout_s = 30\n"
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
