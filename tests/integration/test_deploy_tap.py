"""The tap and a running local worker: nothing deployed (the tap works on queue tags alone,
and moto must never see messages on a queue with a mapping)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from helpers import Project, write_jsonl

from northmigrate.records.sample import generate

pytestmark = pytest.mark.integration
CLOSE_WITHIN_S = 5  # the promise: a closed tap stops local workers' receives within 5 s
BUSY_S = 2  # what a busy machine may add to it (the worker's threads wait for a core)


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_a_running_worker_stops_on_tap_close_and_resumes_on_tap_open(
    project: Project, tmp_path: Path
) -> None:
    project.cli("provision", check=True)
    records = [dict(r, status="approved") for r in generate(12, seed=9)]
    first = write_jsonl(tmp_path / "first.jsonl", records[:6])
    second = write_jsonl(tmp_path / "second.jsonl", records[6:])

    def migrated() -> int:
        return len(project.table_items())

    worker = project.popen("worker", "--concurrency", "2", "--output", "json")
    try:
        project.cli("enqueue", str(first), check=True)
        wait_for(lambda: migrated() == 6, 90, "the first records to be migrated")

        assert project.cli_json("tap", "close")["tap"] == "closed"
        time.sleep(CLOSE_WITHIN_S + BUSY_S)
        project.cli("enqueue", str(second), check=True)
        time.sleep(3)  # longer than a receive would take with the tap open
        assert project.depth() == {"visible": 6, "in_flight": 0, "delayed": 0}
        assert migrated() == 6

        status = project.cli_json("tap", "status")
        assert (status["tap"], status["mappings"]) == ("closed", [])
        assert project.cli_json("tap", "open")["tap"] == "open"
        wait_for(lambda: migrated() == 12, 90, "the worker to resume")
    finally:
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode in (0, 130), err
    report = json.loads(out)
    assert report["received"] == report["succeeded"] == 12, report
    assert project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
