"""End to end on an emulator that really runs Lambda behind an event source mapping.

ministack runs Python functions as local processes (no Docker). Deploy the worker, enqueue a
few hundred records, run no local worker, and every record ends up migrated, or
dead-lettered with its reason. Run it with ``make volume`` or::

    NORTHMIGRATE_MINISTACK=/path/to/ministack .venv/bin/python -m pytest -m volume \\
        tests/integration/test_deploy_ministack.py -q
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, ministack_endpoint, write_jsonl

from northmigrate.records.sample import generate

pytestmark = [pytest.mark.volume, pytest.mark.volume_ci, pytest.mark.integration]
RECORDS = 300


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


@pytest.mark.timeout(900)
def test_lambda_migrates_or_dead_letters_every_record(ministack: str, tmp_path: Path) -> None:
    project = Project(root=tmp_path, endpoint=ministack)
    project.queue_settings.update(visibility_timeout=12, max_receive_count=3)
    project.worker_settings.update(backoff_base_s=1, backoff_max_s=2)
    project.options.update(outage_regions=["ON"], unsupported_business_types=["partnership"])
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\ntimeout_s = 2\nmax_concurrency = 4\n'
    )
    records = [dict(r, status="submitted") for r in generate(RECORDS, seed=5)]
    source = write_jsonl(tmp_path / "records.jsonl", records)

    project.cli("provision", check=True)
    deployed = project.cli_json("deploy")
    assert deployed["changed"] is True, deployed
    enqueued = project.cli_json("enqueue", str(source))
    assert enqueued["enqueued"] == enqueued["eligible"] > RECORDS // 2

    deadline = time.monotonic() + 600  # a bound for a busy machine (about 30 s on a quiet one)
    while project.depth() != {"visible": 0, "in_flight": 0, "delayed": 0}:
        assert time.monotonic() < deadline, f"queue not drained: {project.depth()}"
        time.sleep(2)

    by_id = {r["application_id"]: r for r in records}
    migrated = {item["application_id"]["S"] for item in project.table_items()}
    dead: dict[str, dict[str, Any]] = {}
    letters = project.drain(project.dlq_name)
    unexplained = [m for m in letters if "northmigrate.reason" not in m["MessageAttributes"]]
    assert not unexplained, f"{len(unexplained)} dead letters moved by SQS, without a reason"
    for message in letters:
        body = json.loads(message["Body"])
        dead[body["record_id"]] = {
            "reason": message["MessageAttributes"]["northmigrate.reason"]["StringValue"],
            "kind": body["failures"][-1]["kind"],
        }
    assert not migrated & set(dead)
    assert len(migrated) + len(dead) == enqueued["enqueued"]
    for record_id, letter in dead.items():
        business = by_id[record_id]["business"]
        if business["address"]["region"] == "ON":  # the outage is checked first
            assert letter["kind"] == "exhausted"
            assert letter["reason"].startswith("TargetUnavailable: onboarding service unavailable")
        else:
            assert business["business_type"] == "partnership"
            assert letter["kind"] == "permanent"
            assert letter["reason"].startswith("PermanentError: the new service does not accept")
    for record_id in migrated:
        business = by_id[record_id]["business"]
        assert business["business_type"] != "partnership" and business["address"]["region"] != "ON"
    assert dead and migrated
    print(
        f"\nministack: {enqueued['enqueued']} enqueued, {len(migrated)} migrated by Lambda, "
        f"{len(dead)} dead-lettered with their reasons"
    )
