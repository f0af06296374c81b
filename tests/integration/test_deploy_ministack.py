"""End to end on an emulator that really runs Lambda behind an event source mapping.

ministack runs Python functions as local processes (no Docker). Deploy the worker, enqueue a
few hundred records, run no local worker, and every record ends up migrated, or
dead-lettered with its reason. Run it with ``make volume`` or::

    NORTHMIGRATE_MINISTACK=/path/to/ministack .venv/bin/python -m pytest -m volume \\
        tests/integration/test_deploy_ministack.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, Project, client, write_jsonl

from northmigrate.sample import generate

pytestmark = [pytest.mark.volume, pytest.mark.integration]
RECORDS = 300


def ministack_binary() -> str | None:
    for candidate in (
        os.environ.get("NORTHMIGRATE_MINISTACK"),
        str(REPO / ".venv-ministack" / "bin" / "ministack"),
        shutil.which("ministack"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextmanager
def _own_ministack(binary: str) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="ministack-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NORTHMIGRATE_"))}
    env.update(GATEWAY_PORT=str(port), BIND_HOST="127.0.0.1", TMPDIR=workdir)
    log = Path(workdir) / "ministack.log"
    process = subprocess.Popen(
        [binary], cwd=workdir, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client("sqs", url).list_queues()
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"ministack did not start: {log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    binary = ministack_binary()
    if binary is None:
        pytest.skip("ministack is not installed (make ministack, or set NORTHMIGRATE_MINISTACK)")
    with _own_ministack(binary) as url:
        yield url


def test_lambda_migrates_or_dead_letters_every_record(ministack: str, tmp_path: Path) -> None:
    project = Project(root=tmp_path, endpoint=ministack)
    project.queue_settings.update(visibility_timeout=12, max_receive_count=3)
    project.options.update(outage_regions=["ON"], unsupported_business_types=["partnership"])
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\ntimeout_s = 2\nmax_concurrency = 4\n'
    )
    records = [dict(r, status="submitted") for r in generate(RECORDS, seed=5)]
    source = write_jsonl(tmp_path / "records.jsonl", records)

    project.run("provision", check=True)
    deployed = project.run_json("deploy")
    assert deployed["changed"] is True, deployed
    enqueued = project.run_json("enqueue", str(source))
    assert enqueued["enqueued"] == enqueued["eligible"] > RECORDS // 2

    deadline = time.monotonic() + 240
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
