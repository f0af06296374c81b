"""DLQ operations through the CLI, as an operator runs them, on the embedded endpoint.

The story: a worker run dead-letters records for three different reasons (plus one message
SQS moved itself); the operator inspects (nothing removed, nothing left hidden, no sensitive
value shown), exports, redrives selectively, ships the fix, redrives the rest and drains.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from typing import Any

import pytest
from helpers import Project, write_jsonl

from northmigrate.records import envelope

pytestmark = pytest.mark.integration

SECRET = "SSN-900-12-3456"


# Each record says how it fails; the option `fixed` lists the behaviours the "fix" repairs.
PLUGIN = """
import json
import os
from pathlib import Path

from pydantic import BaseModel

from northmigrate import Migration, MigrationContext, PermanentError

LOG = Path(__file__).with_name("done.log")


class Item(BaseModel):
    item_id: str
    secret: str = ""
    country: str = "CA"
    behaviour: str = "ok"  # ok | unsupported | conflict | broken


def handle(record: Item, ctx: MigrationContext) -> None:
    if record.behaviour not in ctx.options.get("fixed", []):
        if record.behaviour == "unsupported":
            raise PermanentError(f"unsupported item {record.item_id} ({record.secret})")
        if record.behaviour == "conflict":
            raise PermanentError(f"conflict on {record.item_id}")
        if record.behaviour == "broken":
            raise RuntimeError(f"target broken for {record.secret}")
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (record.item_id + "\\n").encode())
    finally:
        os.close(fd)


migration = Migration(
    name="items-v1", model=Item, key="item_id", handler=handle, sensitive=("secret",)
)
"""

BEHAVIOURS = (
    {f"OK-{n}": "ok" for n in range(6)}
    | {f"UN-{n}": "unsupported" for n in range(4)}
    | {f"CO-{n}": "conflict" for n in range(3)}
    | {f"BR-{n}": "broken" for n in range(2)}
)


def items_project(project: Project) -> Project:
    project.write_plugin("items_plugin", PLUGIN)
    project.plugin = "items_plugin:migration"
    project.queue_settings.update({"visibility_timeout": 5})
    project.worker_settings.update({"backoff_base_s": 0, "backoff_max_s": 0})
    project.write_config()
    project.cli("provision", check=True)
    return project


def put_dead(project: Project, record_id: str, behaviour: str = "ok", country: str = "CA") -> None:
    """A dead letter as SQS leaves it when it moves a message itself: no reason."""
    record = {"item_id": record_id, "secret": SECRET, "behaviour": behaviour, "country": country}
    project.client("sqs").send_message(
        QueueUrl=project.queue_url(project.dlq_name),
        MessageBody=envelope.Envelope("items-v1", record_id, record).to_body(),
        MessageAttributes=envelope.attributes("items-v1", record_id),
    )


def done(project: Project) -> list[str]:
    path = project.root / "done.log"
    return path.read_text().split() if path.exists() else []


def visible_ids(project: Project, name: str, expected: int, within: float = 2.0) -> list[str]:
    """The record ids receivable from a queue within `within` seconds (then given back)."""
    sqs = project.client("sqs")
    url = project.queue_url(name)
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + within
    while len(seen) < expected and time.monotonic() < deadline:
        for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
        ).get("Messages", []):
            seen[m["MessageId"]] = m
    for m in seen.values():
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return sorted(json.loads(m["Body"])["record_id"] for m in seen.values())


def total(depth: dict[str, int]) -> int:
    return depth["visible"] + depth["in_flight"] + depth["delayed"]


def test_the_bad_day_inspect_export_redrive_fix_drain(project: Project) -> None:
    items_project(project)
    rows = [{"item_id": i, "behaviour": b, "secret": SECRET} for i, b in BEHAVIOURS.items()]
    write_jsonl(project.root / "items.jsonl", rows)
    assert project.cli_json("enqueue", "items.jsonl")["enqueued"] == 15
    worker = project.cli_json("worker", "--until-empty")
    assert worker["dead_lettered"] == 9, worker
    put_dead(project, "SQ-0")  # one that SQS moved itself
    dead = sorted([i for i, b in BEHAVIOURS.items() if b != "ok"] + ["SQ-0"])
    before = project.depth(project.dlq_name)
    assert total(before) == 10

    # inspect: counts by reason; nothing removed; all receivable again at once; no secret
    result = project.cli("dlq", "inspect", "--limit", "20", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert visible_ids(project, project.dlq_name, 10) == dead
    report = json.loads(result.stdout)
    assert {r["reason"]: r["count"] for r in report["reasons"]} == {
        "PermanentError: unsupported item UN-0 (***)": 1,
        "PermanentError: unsupported item UN-1 (***)": 1,
        "PermanentError: unsupported item UN-2 (***)": 1,
        "PermanentError: unsupported item UN-3 (***)": 1,
        "PermanentError: conflict on CO-0": 1,
        "PermanentError: conflict on CO-1": 1,
        "PermanentError: conflict on CO-2": 1,
        "RuntimeError: target broken for ***": 2,
        "unknown": 1,
    }
    assert report["visible"] == 10 and report["scanned"] == 10 and report["complete"] is True
    assert sorted(m["record_id"] for m in report["messages"]) == dead
    assert all(m["body"]["secret"] == "***" for m in report["messages"])
    assert report["oldest_age_s"] is not None
    assert SECRET not in result.stdout + result.stderr
    assert project.depth(project.dlq_name) == before
    table = project.cli("dlq", "inspect")
    assert table.returncode == 0 and "RuntimeError: target broken for ***" in table.stdout
    assert SECRET not in table.stdout + table.stderr
    shown = project.cli("dlq", "inspect", "--show-pii", "--output", "json")
    assert SECRET in shown.stdout

    # export: every message exactly once, owner-only, masked unless --show-pii
    exported = project.cli_json("dlq", "inspect", "--export", "dead.jsonl", "--limit", "0")
    path = project.root / "dead.jsonl"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert exported["exported"] == len(lines) == 10
    assert len({line["message_id"] for line in lines}) == 10
    assert sorted(line["record_id"] for line in lines) == dead
    assert SECRET not in path.read_text()
    project.cli_json("dlq", "inspect", "--export", "dead-pii.jsonl", "--show-pii")
    assert SECRET in (project.root / "dead-pii.jsonl").read_text()
    assert visible_ids(project, project.dlq_name, 10) == dead

    # dry run: counts, moves nothing
    dry = project.cli_json("dlq", "redrive", "--dry-run", "--where", "reason~^PermanentError")
    assert (dry["matched"], dry["moved"], dry["skipped"], dry["dry_run"]) == (7, 0, 3, True)
    assert total(project.depth()) == 0
    assert visible_ids(project, project.dlq_name, 10) == dead

    # --where moves exactly the matching ones
    moved = project.cli_json("dlq", "redrive", "--where", "reason~conflict")
    assert (moved["matched"], moved["moved"], moved["skipped"], moved["failed"]) == (3, 3, 7, 0)
    assert moved["mode"] == "client" and moved["destination"] == project.queue_name
    assert visible_ids(project, project.queue_name, 3) == ["CO-0", "CO-1", "CO-2"]
    assert visible_ids(project, project.dlq_name, 7) == [i for i in dead if not i.startswith("CO")]

    # --max moves exactly N
    assert project.cli_json("dlq", "redrive", "--max", "2")["moved"] == 2
    assert total(project.depth()) == 5
    assert total(project.depth(project.dlq_name)) == 5

    # the fix ships for "unsupported" and "broken"; "conflict" still fails
    project.options["fixed"] = ["unsupported", "broken"]
    project.write_config()
    rest = project.cli_json("dlq", "redrive")
    assert rest["moved"] == 5
    assert total(project.depth(project.dlq_name)) == 0
    project.cli_json("worker", "--until-empty")
    assert sorted(set(done(project))) == sorted(
        [i for i, b in BEHAVIOURS.items() if b != "conflict"] + ["SQ-0"]
    )
    assert total(project.depth()) == 0
    assert visible_ids(project, project.dlq_name, 3) == ["CO-0", "CO-1", "CO-2"]
    again = project.drain(project.dlq_name)
    for message in again:  # the history travelled with it: failed, redriven, failed again
        body = json.loads(message["Body"])
        assert len(body["failures"]) == 2 and len(body["redrives"]) == 1
        assert body["redrives"][0]["reason"] == body["failures"][0]["reason"]


def test_a_redrive_killed_part_way_and_run_again_loses_nothing(project: Project) -> None:
    items_project(project)
    ids = [f"K-{n:03d}" for n in range(120)]
    sqs = project.client("sqs")
    dlq_url = project.queue_url(project.dlq_name)
    for start in range(0, len(ids), 10):
        sqs.send_message_batch(
            QueueUrl=dlq_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": envelope.Envelope("items-v1", rid, {"item_id": rid}).to_body(),
                }
                for i, rid in enumerate(ids[start : start + 10])
            ],
        )
    process = project.popen(
        "dlq", "redrive", "--rate", "20", "--concurrency", "2", "--visibility-timeout", "2"
    )
    deadline = time.monotonic() + 30
    while total(project.depth()) < 15 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    part = total(project.depth())
    assert 15 <= part < 120, part  # killed part-way
    time.sleep(2.5)  # what the killed run held comes back by itself

    report = project.cli_json("dlq", "redrive")
    assert report["failed"] == 0

    main = project.drain(wait=0)
    left = project.drain(project.dlq_name)
    found = {json.loads(m["Body"])["record_id"] for m in main + left}
    assert found == set(ids)
    assert left == []


def test_watch_once_exits_1_at_the_threshold_and_0_below(project: Project) -> None:
    items_project(project)
    empty = project.cli("dlq", "watch", "--once", "--threshold", "1", "--output", "json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) | {"oldest_age_s": None} == {
        "queue": project.dlq_name,
        "visible": 0,
        "in_flight": 0,
        "delayed": 0,
        "depth": 0,
        "threshold": 1,
        "alert": False,
        "inflow": 0,
        "oldest_age_s": None,
        "tap": {
            "open": True,
            "limit": None,
            "closed_by": None,
            "closed_at": None,
            "reason": None,
            "limit_by": None,  # who set a limit (an operator, or the guard under throttling)
            "limit_reason": None,
            "limit_was": None,
            "opened": None,  # who last opened the tap (the guard's probe says so)
        },
    }
    put_dead(project, "W-1")
    full = project.cli("dlq", "watch", "--once", "--threshold", "1", "--output", "json")
    assert full.returncode == 1, full.stderr
    data = json.loads(full.stdout)
    assert data["visible"] == 1 and data["alert"] is True and data["threshold"] == 1
    assert project.cli("dlq", "watch", "--once", "--threshold", "2").returncode == 0


def test_status_and_alarm(project: Project) -> None:
    items_project(project)
    put_dead(project, "S-1")
    put_dead(project, "S-2")
    status = project.cli_json("status")
    assert status["main"] == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert status["dlq"] == {"visible": 2, "in_flight": 0, "delayed": 0}
    assert status["progress"]["dead_lettered"] == 2
    state = project.root / ".northmigrate" / "last-run.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"run_id": "r1", "enqueued": 10, "at": "2026-01-01T00:00:00Z"}))
    progress = project.cli_json("status")["progress"]
    assert (progress["done"], progress["done_pct"], progress["run_id"]) == (8, 80.0, "r1")

    topic = f"{project.name}-alerts"
    alarm = project.cli_json("alarm", "--sns-topic", topic, "--email", "ops@example.com")
    assert alarm["alarm_name"] == f"{project.dlq_name}-not-empty"
    [described] = project.client("cloudwatch").describe_alarms(AlarmNames=[alarm["alarm_name"]])[
        "MetricAlarms"
    ]
    assert described["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert described["Namespace"] == "AWS/SQS"
    assert described["Dimensions"] == [{"Name": "QueueName", "Value": project.dlq_name}]
    assert described["Threshold"] == 1.0
    assert described["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert described["AlarmActions"] == [alarm["topic_arn"]]
    subs = project.client("sns").list_subscriptions_by_topic(TopicArn=alarm["topic_arn"])
    assert [s["Endpoint"] for s in subs["Subscriptions"]] == ["ops@example.com"]
    assert project.cli_json("alarm", "--sns-topic", topic)["topic_arn"] == alarm["topic_arn"]


def test_usage_errors_are_one_line_and_touch_nothing(project: Project) -> None:
    items_project(project)
    put_dead(project, "E-1")
    bad = project.cli("dlq", "redrive", "--where", "nonsense")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: --where")
    mixed = project.cli("dlq", "redrive", "--native", "--max", "3")
    assert mixed.returncode == 2 and "--native" in mixed.stderr
    assert visible_ids(project, project.dlq_name, 1) == ["E-1"]
