"""The guard on Lambda, behind a real event source mapping (ministack runs the function).

The new service is down for every record: the function's guard trips, tags the tap closed
with its reason and disables its own mapping; the records not tried stay in the main queue
and none is dead-lettered. The service comes back (the fix is deployed: the tap stays
closed, deploy never reopens it); the stack's schedule invokes the function with the probe
event (here invoked at once, as the rule would within a minute): one record is tried, the
function opens the tap and its mapping by itself, and every record is migrated: nothing
lost. The commands run in this process (``Project.cli``); the function runs in ministack's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, ministack_endpoint, write_jsonl

from northmigrate.consume.probe import PROBE_EVENT
from northmigrate.records.sample import generate

pytestmark = [pytest.mark.volume, pytest.mark.volume_ci, pytest.mark.integration]
RECORDS = 150
REGIONS = ["AB", "BC", "CO", "FL", "IL", "NY", "ON", "QC", "TX", "WA"]


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


def wait_for(what: str, check: Callable[[], Any], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def configure(project: Project, outage: list[str]) -> None:
    project.options.update(outage_regions=outage)
    project.worker_settings.update(backoff_base_s=1, backoff_max_s=2, concurrency=4)
    project.guard_settings = {"enabled": True, "window": 10, "min_records": 10}
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\ntimeout_s = 2\nmax_concurrency = 2\n'
    )


def test_the_guard_on_lambda_closes_the_tap_and_the_probe_reopens_it(
    ministack: str, tmp_path: Path
) -> None:
    project = Project(root=tmp_path, endpoint=ministack)
    project.queue_settings.update(visibility_timeout=12, max_receive_count=3)
    configure(project, outage=REGIONS)
    records = [dict(r, status="approved") for r in generate(RECORDS, seed=9)]
    source = write_jsonl(tmp_path / "records.jsonl", records)
    project.cli("provision", check=True)
    assert project.cli_json("deploy")["changed"] is True
    enqueued = project.cli_json("enqueue", str(source))["enqueued"]
    assert enqueued == RECORDS

    def guard_closed() -> dict[str, Any] | None:
        # polled in-process: a CLI process every second would cost most of a core
        tap = project.cli_json("tap", "status")
        settled = tap["mappings"] and all(m["state"] == "Disabled" for m in tap["mappings"])
        return tap if tap["open"] is False and settled else None

    tap = wait_for("the guard to close the tap", guard_closed, within=180)
    assert tap["closed_by"].startswith("guard (lambda ")
    assert "records failed: TargetUnavailable (" in tap["reason"]
    time.sleep(5)  # anything in flight settles; the mapping polls no more
    left = project.depth()
    waiting = left["visible"] + left["in_flight"] + left["delayed"]
    assert waiting > RECORDS // 2, left  # most were never tried
    assert project.depth(project.dlq_name)["visible"] == 0  # none burnt its tries
    assert project.table_items() == []

    configure(project, outage=[])  # the fix
    redeployed = project.cli_json("deploy")
    assert redeployed["tap"] == "closed"  # deploy never reopens a closed tap
    events = project.client("events")
    function = redeployed["function_name"]
    [target] = events.list_targets_by_rule(Rule=f"{function}-probe")["Targets"]
    assert json.loads(target["Input"]) == PROBE_EVENT  # the schedule the stack holds

    # The schedule's ticks, here at once: a tick whose cold start ran past the function's 2 s
    # timeout (a loaded machine) is followed by the next, as the rule's next minute would be.
    answers: list[dict[str, Any]] = []
    for _tick in range(4):
        answer = project.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(PROBE_EVENT).encode()
        )
        answers.append(json.loads(answer["Payload"].read()))
        if answers[-1].get("opened") is True or answers[-1].get("tap") == "open":
            break
        assert "Task timed out" in json.dumps(answers[-1]), answers  # nothing else is retried
    assert answers[-1].get("opened") is True or answers[-1].get("tap") == "open", answers
    tap = project.cli_json("tap", "status")
    assert tap["open"] is True and tap["opened"].startswith("guard (lambda ")
    assert all(m["enabled"] for m in tap["mappings"])  # the function enabled its mapping

    def drained() -> bool:
        return project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}

    wait_for("the queue to drain", drained, within=240)
    migrated = {item["application_id"]["S"] for item in project.table_items()}
    assert migrated == {r["application_id"] for r in records}
    assert project.depth(project.dlq_name)["visible"] == 0
