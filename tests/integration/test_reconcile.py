"""reconcile through the CLI: every outcome present, and a record deleted behind the tool's back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Project

pytestmark = pytest.mark.integration


def test_reconcile_accounts_for_every_outcome_and_finds_a_deleted_record(
    project: Project, tmp_path: Path
) -> None:
    project.options["unsupported_business_types"] = ["nonprofit", "partnership"]
    project.write_config()
    project.cli("provision", check=True)
    source = tmp_path / "records.jsonl"
    project.cli(
        "sample",
        "--count",
        "90",
        "--invalid-rate",
        "0.1",
        "--duplicate-rate",
        "0.05",
        "--seed",
        "5",
        "--out",
        str(source),
        check=True,
    )
    first = project.cli_json("enqueue", str(source), "--limit", "40")
    resume = first["resume_from_line"]
    assert first["enqueued"] == 40 and resume
    worker = project.cli_json("worker", "--until-empty", "--concurrency", "4")
    assert worker["dead_lettered"] > 0 and worker["succeeded"] > 0
    second = project.cli_json("enqueue", str(source), "--from-line", str(resume))
    assert second["enqueued"] > 0  # these stay queued: no worker runs now

    # Without --read-queue the main queue is not read (a read counts as a receive): the
    # records in it are unsettled, and reconcile says to come back.
    quick = project.cli("reconcile", str(source), "--output", "json")
    assert quick.returncode == 1
    unread = json.loads(quick.stdout)
    assert unread["unsettled_total"] == second["enqueued"] and unread["in_queue"] == 0
    assert unread["missing"] == [] and unread["ok"] is False

    report = project.cli_json("reconcile", str(source), "--read-queue")
    assert report["expected"] == 90
    parts = ("migrated", "rejected", "dead_lettered", "in_queue", "missing_total")
    assert sum(report[p] for p in parts) == report["expected"]
    assert report["migrated"] == worker["succeeded"]
    assert report["dead_lettered"] == worker["dead_lettered"]
    assert report["in_queue"] == second["enqueued"]
    validated = project.cli_json("validate", str(source))
    assert report["rejected"] == validated["read"] - validated["eligible"]
    assert report["missing"] == [] and report["ok"] is True
    reasons = {r["reason"] for r in report["dead_letter_reasons"]}
    assert any("does not accept business_type" in r for r in reasons)
    # reading the queues consumed nothing
    assert project.depth()["visible"] == second["enqueued"]

    # a record deleted from the target behind the tool's back is missing
    items = project.table_items()
    victim = items[0]
    project.client("dynamodb").delete_item(
        TableName=project.table, Key={"pk": victim["pk"], "sk": victim["sk"]}
    )
    result = project.cli("reconcile", str(source), "--read-queue", "--output", "json")
    assert result.returncode == 1
    after = json.loads(result.stdout)
    assert after["missing"] == [victim["application_id"]["S"]]
    assert after["migrated"] == report["migrated"] - 1 and after["ok"] is False
    table = project.cli("reconcile", str(source), "--read-queue")
    assert "missing: " + victim["application_id"]["S"] in table.stdout


def test_reconcile_runs_use_up_no_attempt(project: Project, tmp_path: Path) -> None:
    """``max_receive_count = 3``: three reconcile runs (and three with --read-queue) before
    the workers start; every record is then tried and migrated, none lands in the DLQ."""
    project.cli("provision", check=True)
    source = tmp_path / "records.jsonl"
    project.cli("sample", "--count", "30", "--seed", "8", "--out", str(source), check=True)
    sent = project.cli_json("enqueue", str(source))["enqueued"]
    assert sent > 0
    for _ in range(3):
        result = project.cli("reconcile", str(source), "--output", "json")
        report = json.loads(result.stdout)
        assert result.returncode == 1  # not done: the records are still queued
        assert report["unsettled_total"] == sent and report["missing_total"] == 0
        assert report["read_queue"] is False and report["main_queue_depth"] == sent
    for _ in range(3):
        report = project.cli_json("reconcile", str(source), "--read-queue")
        assert report["in_queue"] == sent and report["unsettled_total"] == 0
    summary = project.cli_json("worker", "--until-empty", "--concurrency", "4")
    assert summary["succeeded"] == sent and summary["dead_lettered"] == 0
    assert project.depth(project.dlq_name) == {"visible": 0, "in_flight": 0, "delayed": 0}
    final = project.cli("reconcile", str(source), "--output", "json")
    assert final.returncode == 0, final.stdout
    assert json.loads(final.stdout)["migrated"] == sent
