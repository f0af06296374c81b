"""The worker through the CLI, as a user runs it, on the embedded endpoint (moto's server)."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from typing import Any

import pytest
from helpers import Project, write_jsonl

from northmigrate.records import envelope
from northmigrate.records.sample import SampleGenerator

pytestmark = pytest.mark.integration


# One test plugin; each record says how its handler behaves. The handler logs every start and
# every success to handled.log next to it (one JSON line each, appended atomically).
PLUGIN = """
import json
import os
import time
from pathlib import Path

from pydantic import BaseModel

from northmigrate import Migration, MigrationContext, PermanentError

LOG = Path(__file__).with_name("handled.log")


class Item(BaseModel):
    item_id: str
    secret: str = ""
    behaviour: str = "ok"  # ok | flaky | fail | permanent | slow


def _log(event: str, record: Item, ctx: MigrationContext) -> None:
    line = json.dumps({"id": record.item_id, "event": event, "attempt": ctx.attempt,
                       "message_id": ctx.message_id, "pid": os.getpid()})
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def handle(record: Item, ctx: MigrationContext) -> None:
    _log("start", record, ctx)
    if record.behaviour == "flaky" and ctx.attempt <= 2:
        raise ConnectionError(f"target busy for {record.item_id}")
    if record.behaviour == "fail":
        raise RuntimeError(f"always broken: {record.secret}")
    if record.behaviour == "permanent":
        raise PermanentError(f"cannot take {record.item_id} with {record.secret}")
    if record.behaviour == "slow":
        time.sleep(float(ctx.options.get("slow_s", 1)))
    _log("done", record, ctx)


migration = Migration(
    name="items-v1", model=Item, key="item_id", handler=handle, sensitive=("secret",)
)
"""


def items_project(project: Project, **queue: Any) -> Project:
    """The items plugin on a queue with a 10 s visibility timeout (a test that needs messages
    back sooner says so): short enough for a test, long enough that a busy machine does not
    let a message's visibility lapse before its delete lands (SQS may then deliver it again:
    at least once)."""
    project.write_plugin("items_plugin", PLUGIN)
    project.plugin = "items_plugin:migration"
    project.queue_settings.update({"visibility_timeout": 10, **queue})
    project.write_config()
    project.cli("provision", check=True)
    return project


def enqueue(project: Project, behaviours: dict[str, str], **extra: Any) -> None:
    rows = [{"item_id": i, "behaviour": b, **extra} for i, b in behaviours.items()]
    write_jsonl(project.root / "items.jsonl", rows)
    report = project.cli_json("enqueue", "items.jsonl")
    assert report["enqueued"] == len(rows), report


def handled(project: Project) -> list[dict[str, Any]]:
    path = project.root / "handled.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def events(project: Project, event: str) -> dict[str, list[int]]:
    """{record id: [attempt of each such event]}"""
    out: dict[str, list[int]] = defaultdict(list)
    for entry in handled(project):
        if entry["event"] == event:
            out[entry["id"]].append(entry["attempt"])
    return dict(out)


def work(project: Project, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = project.cli("worker", "--until-empty", *args, "--output", "json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def adds_up(summary: dict[str, Any]) -> None:
    accounted = sum(
        summary[k] for k in ("succeeded", "retried", "dead_lettered", "released", "abandoned")
    )
    assert summary["received"] == accounted, summary


EMPTY = {"visible": 0, "in_flight": 0, "delayed": 0}


def test_400_records_migrate_into_the_table(project: Project) -> None:
    project.queue_settings["visibility_timeout"] = 10
    project.write_config()
    project.cli("provision", check=True)
    generator = SampleGenerator(seed=3)
    records = []
    for n in range(1, 401):
        record = generator.record(n)
        record["status"] = "approved"
        records.append(record)
    write_jsonl(project.root / "records.jsonl", records)
    assert project.cli_json("enqueue", "records.jsonl")["enqueued"] == 400

    summary = work(project, "--concurrency", "8")

    # Each message received once: a delete SQS confirmed stays done. (moto alone put deleted
    # messages back when two deletes ran at once, and they came again a visibility timeout
    # later: see northmigrate.aws.local.atomic_sqs_writes.)
    assert summary["received"] == summary["succeeded"] == 400
    assert summary["retried"] == summary["dead_lettered"] == summary["released"] == 0
    assert summary["stopped"] == "empty"
    adds_up(summary)
    items = project.table_items()
    assert sorted(i["application_id"]["S"] for i in items) == sorted(
        r["application_id"] for r in records
    )
    assert project.depth() == EMPTY
    assert project.depth(project.dlq_name) == EMPTY


def test_transient_failures_are_retried_with_backoff_then_migrated(project: Project) -> None:
    # a short backoff (the default's 30 s base would make this a minute and a half of waiting):
    # its timing is tests/unit/test_worker_pacing.py's; here, that each retry is a new attempt
    project.worker_settings.update({"backoff_base_s": 1, "backoff_max_s": 2})
    items_project(project)
    behaviours = {f"IT-{n:03d}": ("flaky" if n % 5 == 0 else "ok") for n in range(1, 31)}
    enqueue(project, behaviours)

    summary = work(project, "--concurrency", "4")

    flaky = {i for i, b in behaviours.items() if b == "flaky"}
    assert summary["succeeded"] == 30
    assert summary["dead_lettered"] == 0
    assert summary["retried"] == 2 * len(flaky)
    assert {r["reason"] for r in summary["retry_reasons"]} == {
        f"ConnectionError: target busy for {i}" for i in flaky
    }
    adds_up(summary)
    starts, done = events(project, "start"), events(project, "done")
    assert set(done) == set(behaviours)
    for record_id in flaky:  # the attempt is the envelope's: each retry a copy, one higher
        assert sorted(starts[record_id]) == [1, 2, 3]
        assert done[record_id] == [3]
    for record_id in set(behaviours) - flaky:
        assert starts[record_id] == [1]
    assert project.depth() == EMPTY
    assert project.depth(project.dlq_name) == EMPTY


def test_failing_and_permanent_records_land_in_the_dlq_with_reasons(project: Project) -> None:
    project.worker_settings.update({"backoff_base_s": 0.5, "backoff_max_s": 2})
    items_project(project)
    behaviours = {f"IT-{n:03d}": "ok" for n in range(1, 15)}
    behaviours.update(
        {"IT-F1": "fail", "IT-F2": "fail", "IT-P1": "permanent", "IT-P2": "permanent"}
    )
    enqueue(project, behaviours, secret="SSN-900-12-3456")

    summary = work(project, "--concurrency", "4")

    assert summary["succeeded"] == 14
    assert summary["dead_lettered"] == 4
    assert summary["retried"] == 4  # two failing records, two retries each
    adds_up(summary)
    assert project.depth() == EMPTY
    dead = project.drain(project.dlq_name)
    assert len(dead) == 4
    by_id: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for message in dead:
        body = json.loads(message["Body"])
        assert "SSN-900-12-3456" not in json.dumps(body["failures"])
        attrs = message["MessageAttributes"]
        assert attrs[envelope.ATTR_REASON]["StringValue"] == body["failures"][-1]["reason"]
        assert "SSN-900-12-3456" not in json.dumps(attrs)
        by_id[body["record_id"]] = (body["failures"][-1], attrs)
    assert set(by_id) == {"IT-F1", "IT-F2", "IT-P1", "IT-P2"}
    for record_id in ("IT-F1", "IT-F2"):
        failure, attrs = by_id[record_id]
        assert failure["reason"] == "RuntimeError: always broken: ***"
        assert failure["kind"] == "exhausted"
        assert failure["attempt"] == 3
        assert attrs[envelope.ATTR_FAILURE_KIND]["StringValue"] == "exhausted"
    for record_id in ("IT-P1", "IT-P2"):
        failure, _attrs = by_id[record_id]
        assert failure["reason"] == f"PermanentError: cannot take {record_id} with ***"
        assert failure["kind"] == "permanent"
        assert failure["attempt"] == 1
        assert failure["migration"] == "items-v1"
    starts = events(project, "start")
    assert starts["IT-P1"] == [1] and starts["IT-P2"] == [1]  # no retries used up
    assert sorted(starts["IT-F1"]) == [1, 2, 3]
    assert set(events(project, "done")) == {i for i, b in behaviours.items() if b == "ok"}


def test_foreign_messages_are_dead_lettered_and_the_worker_keeps_going(project: Project) -> None:
    items_project(project)
    enqueue(project, {f"IT-{n}": "ok" for n in range(5)})
    sqs, url = project.client("sqs"), project.queue_url()
    other = envelope.Envelope(migration="someone-else", record_id="X-1", record={"item_id": "X"})
    drifted = envelope.Envelope(migration="items-v1", record_id="IT-D", record={"id": "IT-D"})
    foreign = {
        "plain": "hello, not JSON",
        "json": json.dumps({"item_id": "IT-J"}),
        "other": other.to_body(),
        "drifted": drifted.to_body(),
    }
    for body in foreign.values():
        sqs.send_message(QueueUrl=url, MessageBody=body)

    summary = work(project, "--concurrency", "2")

    assert summary["succeeded"] == 5
    assert summary["dead_lettered"] == 4
    adds_up(summary)
    assert project.depth() == EMPTY
    reasons = {
        m["Body"]: m["MessageAttributes"][envelope.ATTR_REASON]["StringValue"]
        for m in project.drain(project.dlq_name)
    }
    assert reasons["hello, not JSON"] == "EnvelopeError: message body is not JSON"
    assert reasons[foreign["json"]] == (
        "EnvelopeError: message body is not a northmigrate envelope"
    )
    rest = {reason for body, reason in reasons.items() if body.startswith('{"northmigrate"')}
    assert rest == {
        "ForeignMessage: an envelope of migration 'someone-else', not 'items-v1'",
        "ValidationError: item_id: Field required",
    }


def wait_for(predicate: Any, timeout: float = 90.0) -> None:
    """Wait until ``predicate()`` (a bound on a busy machine, not what a test proves)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigkill_mid_run_then_a_new_worker_loses_nothing(project: Project) -> None:
    items_project(project, visibility_timeout=3)  # what the killed worker held comes back soon
    project.options["slow_s"] = 0.2
    project.write_config()
    ids = {f"IT-{n:03d}": "slow" for n in range(40)}
    enqueue(project, ids)
    first = project.popen("worker", "--concurrency", "4")
    try:
        wait_for(lambda: len(events(project, "done")) >= 8)
    finally:
        first.kill()
        first.communicate(timeout=10)
    assert len(events(project, "done")) < len(ids)

    summary = work(project, "--concurrency", "8")

    assert set(events(project, "done")) == set(ids)
    assert summary["dead_lettered"] == 0
    assert project.depth() == EMPTY
    assert project.depth(project.dlq_name) == EMPTY


def test_sigterm_finishes_started_records_and_hands_back_the_rest(project: Project) -> None:
    project.fifo = True
    # a long visibility timeout: what is visible at the end was handed back, not timed out
    items_project(project, visibility_timeout=60)
    project.options["slow_s"] = 5  # G-0 is still running when the signal is handled
    project.write_config()
    sqs, url = project.client("sqs"), project.queue_url()
    for n in range(5):  # one message group: processed one after the other, in order
        body = envelope.Envelope(
            migration="items-v1",
            record_id=f"G-{n}",
            record={"item_id": f"G-{n}", "behaviour": "slow"},
        ).to_body()
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=str(n)
        )
    worker = project.popen("worker", "--concurrency", "3", "--grace", "10", "--output", "json")
    wait_for(lambda: "G-0" in events(project, "start"))
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=90)

    assert worker.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["stopped"] == "signal"
    assert summary["succeeded"] == 1
    assert summary["received"] == 1 + summary["released"]
    assert summary["released"] >= 1  # G-1 (and G-2) were received with G-0 but not started
    adds_up(summary)
    assert set(events(project, "start")) == {"G-0"}
    assert set(events(project, "done")) == {"G-0"}
    # handed back at once: all four are visible again, nothing waits out a visibility timeout
    assert project.depth() == {"visible": 4, "in_flight": 0, "delayed": 0}
    order = [json.loads(m["Body"])["record_id"] for m in project.drain()]
    assert order == ["G-1", "G-2", "G-3", "G-4"]


def test_a_handler_slower_than_the_visibility_timeout_runs_once(project: Project) -> None:
    # The handler runs for twice the visibility timeout: without the heartbeat SQS would give
    # the message out again halfway. 4 s leaves a busy machine room for a heartbeat (every
    # 1.3 s) to be late.
    items_project(project, visibility_timeout=4)
    project.options["slow_s"] = 8
    project.write_config()
    enqueue(project, {"IT-S1": "slow", "IT-S2": "slow"})

    summary = work(project, "--concurrency", "4")  # free slots: it keeps receiving meanwhile

    assert summary["received"] == summary["succeeded"] == 2
    assert events(project, "start") == {"IT-S1": [1], "IT-S2": [1]}
    assert project.depth() == EMPTY


def test_worker_without_a_queue_is_an_aws_error(project: Project) -> None:
    result = project.cli("worker", "--until-empty")
    assert result.returncode == 3
    assert result.stderr.startswith("Error: ")
    assert "provision" in result.stderr
    assert "Traceback" not in result.stderr


def test_hand_backs_and_kills_are_not_attempts(project: Project) -> None:
    """Workers stopped with SIGTERM (hand-backs) and killed with SIGKILL, again and again:
    each record still gets its three real tries and is migrated on the first."""
    items_project(project, visibility_timeout=2)
    project.options["slow_s"] = 0.3
    project.write_config()
    rows = [{"item_id": f"S-{n:02d}", "behaviour": "slow"} for n in range(25)]
    write_jsonl(project.root / "items.jsonl", rows)
    assert project.cli_json("enqueue", "items.jsonl")["enqueued"] == 25
    for round_ in range(4):
        worker = project.popen("worker", "--concurrency", "1", "--grace", "5", "--output", "json")
        started = len(events(project, "start"))
        wait_for(lambda started=started: len(events(project, "start")) > started)  # type: ignore[misc]
        if round_ % 2:
            worker.kill()  # SIGKILL: what it held comes back after its visibility timeout
            worker.wait(timeout=30)
            time.sleep(2.5)
        else:
            worker.send_signal(signal.SIGTERM)  # hands its prefetched messages back
            worker.communicate(timeout=90)
    summary = work(project, "--concurrency", "4")
    assert summary["dead_lettered"] == 0
    assert project.depth(project.dlq_name) == EMPTY
    done = events(project, "done")
    assert set(done) == {row["item_id"] for row in rows}
    # Received many times over, each was on its first real try when it ran (a record the
    # SIGKILL cut short ran again: an attempt that produced no outcome is not counted).
    assert {attempt for attempts in done.values() for attempt in attempts} == {1}
