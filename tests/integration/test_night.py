"""A production night through the CLI, on the embedded endpoint (moto's server): the worker's
events and metrics, the guard closing the tap for everyone and ``tap open`` resuming with
nothing lost, and a canary redrive that passes and one that fails."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from typing import Any

import pytest
from helpers import Project, write_jsonl

from tests.support.emf import assert_emf

pytestmark = pytest.mark.integration

SECRET = "TAX-111-22-3333"
PLUGIN = """
import os
from pathlib import Path

from pydantic import BaseModel

from northmigrate import Migration, MigrationContext, PermanentError, TargetUnavailable

HERE = Path(__file__).parent


class Item(BaseModel):
    item_id: str
    secret: str = ""
    behaviour: str = "ok"  # ok | bad (refused until the fix ships: options.fixed)


def handle(record: Item, ctx: MigrationContext) -> None:
    if (HERE / "outage").exists():
        raise TargetUnavailable(f"target down while writing {record.item_id}")
    if record.behaviour == "bad" and not ctx.options.get("fixed"):
        raise PermanentError(f"cannot take {record.item_id} ({record.secret})")
    fd = os.open(HERE / "done.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (record.item_id + "\\n").encode())
    finally:
        os.close(fd)


def verify(record: Item, ctx: MigrationContext) -> bool:
    log = HERE / "done.log"
    return log.exists() and record.item_id in log.read_text().split()


migration = Migration(
    name="night-v1", model=Item, key="item_id", handler=handle, verify=verify,
    sensitive=("secret",),
)
"""

EVENT_FIELDS = {
    "event", "migration", "run_id", "record_id", "message_id", "attempt", "outcome",
    "failure_kind", "error_kind", "reason", "backoff_s", "duration_ms", "consumer",
}  # fmt: skip


def night(project: Project, guard: dict[str, Any] | None = None, fixed: bool = False) -> Project:
    project.write_plugin("night_plugin", PLUGIN)
    project.plugin = "night_plugin:migration"
    project.queue_settings.update({"visibility_timeout": 5})
    project.worker_settings.update({"backoff_base_s": 0, "backoff_max_s": 0, "wait_time_s": 1})
    if guard is not None:
        project.guard_settings = guard
    if fixed:
        project.options["fixed"] = True
    project.write_config()
    return project


def enqueue(project: Project, behaviours: dict[str, str]) -> None:
    rows = [{"item_id": i, "secret": SECRET, "behaviour": b} for i, b in behaviours.items()]
    source = write_jsonl(project.root / "records.jsonl", rows)
    project.cli("enqueue", str(source), check=True)


def done(project: Project) -> list[str]:
    path = project.root / "done.log"
    return path.read_text().split() if path.exists() else []


def test_the_worker_tells_each_outcome_and_its_metrics(project: Project) -> None:
    night(project).cli("provision", check=True)
    enqueue(project, {f"OK-{n}": "ok" for n in range(5)} | {"BAD-1": "bad"})
    result = project.run(
        "worker", "--until-empty", "--log-format", "json",
        "--metrics", "emf", "--metrics-file", "metrics.emf", "--output", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    records = [e for e in events if e.get("event") == "record"]
    assert len(records) == 6 and all(set(e) == EVENT_FIELDS for e in records)
    by_id = {e["record_id"]: e for e in records}
    assert by_id["OK-0"]["outcome"] == "migrated" and by_id["OK-0"]["consumer"] == "worker"
    assert by_id["BAD-1"]["outcome"] == "dead_lettered"
    assert by_id["BAD-1"]["failure_kind"] == "permanent"
    assert SECRET not in result.stderr and SECRET not in result.stdout
    assert json.loads(result.stdout)["succeeded"] == 5  # stdout stays the summary alone
    documents = [json.loads(line) for line in (project.root / "metrics.emf").read_text().split()]
    for document in documents:
        assert_emf(document)
    assert sum(d.get("Migrated", 0) for d in documents) == 5
    assert [d["FailureKind"] for d in documents if "DeadLettered" in d] == ["permanent"]

    refused = project.cli("worker", "--until-empty", "--metrics", "emf", "--output", "json")
    assert refused.returncode == 2 and "--metrics-file" in refused.stderr

    enqueue(project, {f"CW-{n}": "ok" for n in range(3)})
    result = project.cli("worker", "--until-empty", "--metrics", "cloudwatch")
    assert result.returncode == 0, result.stderr
    cloudwatch = project.client("cloudwatch")
    metrics = cloudwatch.list_metrics(Namespace="northmigrate", MetricName="Migrated")["Metrics"]
    assert {"Name": "Migration", "Value": "night-v1"} in metrics[0]["Dimensions"]


def test_with_manual_reopen_the_guard_closes_the_tap_and_tap_open_resumes_with_nothing_lost(
    project: Project,
) -> None:
    guard = {"enabled": True, "window": 10, "min_records": 10, "failure_share": 0.5}
    night(project, guard=guard | {"reopen": "manual"})
    project.cli("provision", check=True)
    ids = [f"REC-{n:03d}" for n in range(40)]
    enqueue(project, dict.fromkeys(ids, "ok"))
    (project.root / "outage").write_text("the new service is down")

    stopped = project.cli("worker", "--until-empty", "--concurrency", "2")
    assert stopped.returncode == 1, stopped.stderr
    assert "the guard closed the tap: outage: 10 of the last 10 records failed" in stopped.stderr
    assert "TargetUnavailable" in stopped.stderr and "Traceback" not in stopped.stderr
    tap = project.cli_json("tap", "status")
    assert tap["open"] is False and tap["closed_by"].startswith("guard (worker")
    assert tap["reason"].startswith("outage: 10 of the last 10 records failed: TargetUnavailable (")
    assert project.cli_json("status")["tap"]["reason"] == tap["reason"]
    watch = project.cli_json("dlq", "watch", "--once")
    assert watch["tap"]["reason"] == tap["reason"] and watch["depth"] <= 10
    assert done(project) == []

    again = project.cli("worker", "--until-empty")  # a closed tap stops every worker
    assert again.returncode == 1 and "the guard closed the tap" in again.stderr
    assert done(project) == []

    (project.root / "outage").unlink()  # the new service is back
    assert project.cli_json("tap", "open")["open"] is True
    resumed = project.cli("worker", "--until-empty")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(set(done(project))) == ids
    assert project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert project.depth(project.dlq_name)["visible"] == 0


def background_worker(project: Project) -> subprocess.Popen[str]:
    return project.popen("worker", "--concurrency", "2")


def stop(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGINT)
    try:
        worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.communicate()


def wait_for(check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_a_canary_that_fails_moves_nothing_more_and_one_that_passes_moves_the_rest(
    project: Project,
) -> None:
    night(project).cli("provision", check=True)
    bad = [f"BAD-{n}" for n in range(8)]
    enqueue(project, dict.fromkeys(bad, "bad"))
    assert project.cli("worker", "--until-empty").returncode == 0
    assert project.depth(project.dlq_name)["visible"] == 8

    plan = project.cli_json("dlq", "redrive", "--canary", "2", "--dry-run")
    assert plan["canary"] == {"requested": 2, "would_move": 2, "then": 6, "wait_s": 300.0}
    assert project.depth(project.dlq_name)["visible"] == 8

    # The fix has not shipped: the canaries come straight back.
    worker = background_worker(project)
    try:
        failed = project.cli(
            "dlq", "redrive", "--canary", "2", "--canary-wait", "60", "--output", "json"
        )
    finally:
        stop(worker)
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    assert report["canary"]["back"] == 2 and report["canary"]["passed"] is False
    assert report["moved"] == 2  # the canary only
    assert all(r["reason"].startswith("PermanentError") for r in report["canary"]["records"])
    assert SECRET not in failed.stdout
    assert project.depth(project.dlq_name)["visible"] == 8 and done(project) == []

    # The fix ships (the worker restarts with it): the canary passes, the rest follows.
    night(project, fixed=True)
    worker = background_worker(project)
    try:
        passed = project.cli_json("dlq", "redrive", "--canary", "2", "--canary-wait", "60")
        assert passed["canary"]["migrated"] == 2 and passed["canary"]["passed"] is True
        assert passed["moved"] == 8
        wait_for(lambda: sorted(set(done(project))) == bad)
    finally:
        stop(worker)
    assert project.depth(project.dlq_name)["visible"] == 0
