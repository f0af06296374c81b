"""enqueue under faults, killed by SIGKILL and run again: every record is in the queue at
least once, and nothing that is not a record of the source."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from helpers import Project, write_jsonl
from support.proxy import FaultProxy

from .plugin_code import PLUGIN
from .support import (
    SEED,
    TIMEOUT,
    Profile,
    chaos_settings,
    faults_injected,
    figures,
    hostile,
    record_ids,
    run_killed_then_rerun,
    via,
    visible,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration, TIMEOUT]


def test_enqueue_killed_and_rerun_leaves_every_record_in_the_queue(
    chaos_project: Project, proxy: FaultProxy, profile: Profile
) -> None:
    project = chaos_project
    rng = random.Random(SEED + 1)
    project.write_plugin("chaos_plugin", PLUGIN)
    project.plugin = "chaos_plugin:migration"
    chaos_settings(project)
    project.write_config()
    project.run("provision", check=True)
    ids = {f"E-{n:05d}" for n in range(profile.enqueue_records)}
    rows = [{"rid": rid, "n": n, "payload": f"p{n}"} for n, rid in enumerate(sorted(ids))]
    rows.append({"rid": "BAD-1"})  # invalid: rejected, never sent
    write_jsonl(project.root / "source.jsonl", rows)
    sqs = project.client("sqs")
    url = project.queue_url()

    # one batch at a time, a little latency: a kill lands mid-run
    proxy.plan = replace(hostile(profile, SEED + 1, rate=0.05), latency_s=0.03)
    killed, last = run_killed_then_rerun(
        project,
        ["enqueue", "source.jsonl", "--concurrency", "1"],
        via(proxy.url),
        kills=profile.enqueue_kills,
        rng=rng,
        mark=visible(sqs, url),
        step=10,
        kill_delay_s=0.25,
        deadline_s=profile.deadline_s,
    )
    faults = faults_injected(proxy.counts)
    summary = last.summary()
    assert last.process.returncode == 0 and summary is not None, last.tail()
    assert summary["enqueued"] == len(ids) and summary["failed"] == 0, summary
    assert summary["invalid"] == 1
    assert any(run.killed for run in killed), "every enqueue finished before its kill"

    queued = record_ids(project.drain())
    lost = sorted(ids - set(queued))
    unexpected = sorted(set(queued) - ids)
    figures(
        f"enqueue/{profile.name}",
        {
            "records": len(ids),
            "faults": faults,
            "kills": sum(run.killed for run in killed),
            "messages": sum(queued.values()),
            "records_queued_more_than_once": sum(1 for n in queued.values() if n > 1),
            "lost": len(lost),
            "unexpected": len(unexpected),
        },
    )
    assert lost == [] and unexpected == [], (lost, unexpected)
