"""dlq redrive under faults, killed by SIGKILL and run again: every dead letter is in the DLQ
or the main queue at every step, none in neither, and after the last run all are back in the
main queue."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from helpers import Project
from support.proxy import FaultPlan, FaultProxy

from northmigrate.records import envelope

from . import support
from .support import (
    SEED,
    TIMEOUT,
    Profile,
    chaos_settings,
    faults_injected,
    figures,
    hostile,
    peek_ids,
    record_ids,
    run_killed_then_rerun,
    via,
    visible,
    wait_until_settled,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration, TIMEOUT]


def fill_dlq(project: Project, ids: list[str]) -> None:
    sqs = project.client("sqs")
    url = project.queue_url(project.dlq_name)
    reason = {envelope.ATTR_REASON: {"DataType": "String", "StringValue": "PermanentError: x"}}
    for start in range(0, len(ids), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": envelope.Envelope(
                    migration="chaos-v1", record_id=rid, record={"rid": rid, "n": 1, "payload": ""}
                ).to_body(),
                "MessageAttributes": reason,
            }
            for i, rid in enumerate(ids[start : start + 10])
        ]
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed"), response


@pytest.mark.parametrize("processes", [1, 2])
def test_redrive_killed_and_rerun_loses_no_dead_letter(
    chaos_project: Project, proxy: FaultProxy, profile: Profile, processes: int
) -> None:
    # With --processes 2 the SIGKILL hits the parent: its processes notice, stop and give
    # back what they hold.
    project = chaos_project
    rng = random.Random(SEED + 2)
    chaos_settings(project)
    project.write_config()
    project.run("provision", check=True)
    ids = [f"D-{n:05d}" for n in range(profile.redrive_messages)]
    fill_dlq(project, ids)
    sqs = project.client("sqs")

    proxy.plan = hostile(profile, SEED + 2, rate=0.05)
    args = ["dlq", "redrive", "--visibility-timeout", "2", "--concurrency", "2", "--rate", "100"]
    args += ["--processes", str(processes)]
    killed, _ = run_killed_then_rerun(
        project,
        args,
        via(proxy.url),
        kills=profile.redrive_kills,
        rng=rng,
        mark=visible(sqs, project.queue_url()),
        step=10,
        kill_delay_s=0.5,
        deadline_s=profile.deadline_s,
    )
    assert any(run.killed for run in killed), "every redrive finished before its kill"
    faults = faults_injected(proxy.counts)
    # After the kills and a re-run under faults: each dead letter is in one queue or both.
    # (What the killed runs held, or what a run received but never got the answer of, is
    # hidden in the DLQ until its visibility lapses.)
    proxy.plan = FaultPlan()
    wait_until_settled(project, project.dlq_name)
    during = peek_ids(project, project.dlq_name)
    lost_midway = sorted(set(ids) - set(during) - set(peek_ids(project)))
    assert lost_midway == [], lost_midway

    # Without faults, one more run moves whatever is left.
    again = project.run_json(*args, env=via(proxy.url), timeout=profile.deadline_s)
    assert again["failed"] == 0, again
    wait_until_settled(project, project.dlq_name, project.queue_name)

    in_dlq = record_ids(project.drain(project.dlq_name))
    in_main = record_ids(project.drain())
    expected = set(ids)
    lost = sorted(expected - set(in_main) - set(in_dlq))
    unexpected = sorted((set(in_main) | set(in_dlq)) - expected)
    figures(
        f"redrive/{profile.name}/processes-{processes}",
        {
            "messages": len(ids),
            "faults": faults,
            "kills": sum(run.killed for run in killed),
            "in_main": sum(in_main.values()),
            "left_in_dlq_after_faulty_runs": sum(during.values()),
            "left_in_dlq": sum(in_dlq.values()),
            "duplicated": sum(n - 1 for n in in_main.values()),
            "lost": len(lost),
            "unexpected": len(unexpected),
        },
    )
    assert lost == [] and unexpected == [], (lost, unexpected)
    assert set(in_main) == expected  # everything made it back
    assert set(in_dlq) <= set(in_main)  # a dead letter left behind was also moved


def redrive_children(pid: int) -> list[int]:
    """The redrive processes a ``dlq redrive --processes N`` started (spawned interpreters;
    not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return sorted(found)


def test_a_redrive_process_killed_mid_run_is_named_and_a_rerun_moves_the_rest(
    chaos_project: Project, proxy: FaultProxy, profile: Profile
) -> None:
    """--processes 2 under faults, one of its processes SIGKILLed while it moves: the run
    names it and exits 1, each dead letter is in the DLQ or the main queue, and a rerun
    moves the rest: none lost, none duplicated beyond what the killed one had sent."""
    project = chaos_project
    chaos_settings(project)
    project.write_config()
    project.run("provision", check=True)
    ids = [f"K-{n:05d}" for n in range(profile.redrive_messages)]
    fill_dlq(project, ids)
    sqs = project.client("sqs")
    proxy.plan = hostile(profile, SEED + 3, rate=0.05)
    args = ["dlq", "redrive", "--visibility-timeout", "2", "--concurrency", "2", "--rate", "40"]
    args += ["--processes", "2"]
    run = support.start(project, args, via(proxy.url), "redrive-child-kill")
    mark = visible(sqs, project.queue_url())
    deadline = time.monotonic() + profile.deadline_s
    children: list[int] = []
    while len(children) < 2 or mark() < 10:  # both started, and moving
        assert run.process.poll() is None, run.tail()
        assert time.monotonic() < deadline, run.tail()
        children = redrive_children(run.process.pid)
        time.sleep(0.05)
    os.kill(children[0], signal.SIGKILL)
    code = run.process.wait(timeout=profile.deadline_s)
    summary = run.summary()
    assert code == 1, run.tail()
    assert summary is not None and summary["ended"] == "died", summary
    [gone] = [p for p in summary["processes"] if p.get("died")]
    assert gone["signal"] == "SIGKILL"
    assert "ended without a report" in run.tail()

    proxy.plan = FaultPlan()
    wait_until_settled(project, project.dlq_name)
    lost_midway = sorted(
        set(ids) - set(peek_ids(project, project.dlq_name)) - set(peek_ids(project))
    )
    assert lost_midway == [], lost_midway
    again = project.run_json(*args, env=via(proxy.url), timeout=profile.deadline_s)
    assert again["failed"] == 0 and "died" not in again["ended"], again
    wait_until_settled(project, project.dlq_name, project.queue_name)
    in_dlq = record_ids(project.drain(project.dlq_name))
    in_main = record_ids(project.drain())
    figures(
        f"redrive-child-kill/{profile.name}",
        {
            "messages": len(ids),
            "in_main": sum(in_main.values()),
            "left_in_dlq": sum(in_dlq.values()),
            "duplicated": sum(n - 1 for n in in_main.values()),
        },
    )
    assert set(in_main) == set(ids) and not in_dlq  # all moved, none lost, none unexpected
