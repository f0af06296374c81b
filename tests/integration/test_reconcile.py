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
    project.run("provision", check=True)
    source = tmp_path / "records.jsonl"
    project.run(
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
    first = project.run_json("enqueue", str(source), "--limit", "40")
    resume = first["resume_from_line"]
    assert first["enqueued"] == 40 and resume
    worker = project.run_json("worker", "--until-empty", "--concurrency", "4")
    assert worker["dead_lettered"] > 0 and worker["succeeded"] > 0
    second = project.run_json("enqueue", str(source), "--from-line", str(resume))
    assert second["enqueued"] > 0  # these stay queued: no worker runs now

    report = project.run_json("reconcile", str(source))
    assert report["expected"] == 90
    parts = ("migrated", "rejected", "dead_lettered", "in_queue", "missing_total")
    assert sum(report[p] for p in parts) == report["expected"]
    assert report["migrated"] == worker["succeeded"]
    assert report["dead_lettered"] == worker["dead_lettered"]
    assert report["in_queue"] == second["enqueued"]
    validated = project.run_json("validate", str(source))
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
    result = project.run("reconcile", str(source), "--output", "json")
    assert result.returncode == 1
    after = json.loads(result.stdout)
    assert after["missing"] == [victim["application_id"]["S"]]
    assert after["migrated"] == report["migrated"] - 1 and after["ok"] is False
    table = project.run("reconcile", str(source))
    assert "missing: " + victim["application_id"]["S"] in table.stdout
