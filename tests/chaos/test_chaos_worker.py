"""The whole migration under faults: the Jepsen "total queue" check.

Enqueue through a proxy that injects every kind of fault; four worker processes, killed
with SIGKILL at random moments and restarted, drain the queue while the proxy keeps
injecting faults and the handler fails transiently (20 %) and permanently for a known
subset. Then the faults stop, the fix ships, the DLQ is redriven and a last worker drains
the queue. Every record of the source must be migrated exactly once: none lost, none
unexpected, no effect duplicated; the known-permanent subset must have been in the DLQ with
its reason; and ``reconcile`` must account for every record with nothing missing.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from helpers import Project, write_jsonl
from support.proxy import FaultPlan, FaultProxy

from .plugin_code import PLUGIN
from .support import (
    SEED,
    TIMEOUT,
    Fleet,
    Profile,
    chaos_settings,
    faults_injected,
    figures,
    hostile,
    runs_log,
    via,
    wait_until_settled,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration, TIMEOUT]


def source_records(profile: Profile, rng: random.Random) -> tuple[list[object], set[str]]:
    """The source: valid records and a few invalid lines, shuffled; and the valid ids."""
    rows: list[object] = [
        {"rid": f"R-{n:05d}", "n": n, "payload": f"payload {n} " + "x" * rng.randrange(40)}
        for n in range(profile.records)
    ]
    rows += [{"rid": f"BAD-{n}", "payload": "no n"} for n in range(profile.invalid)]
    rng.shuffle(rows)
    valid = {str(row["rid"]) for row in rows if isinstance(row, dict) and "n" in row}
    return rows, valid


def test_every_record_is_migrated_exactly_once_under_faults_and_kills(
    chaos_project: Project, proxy: FaultProxy, profile: Profile
) -> None:
    project = chaos_project
    rng = random.Random(SEED)
    rows, valid = source_records(profile, rng)
    permanent = sorted(rng.sample(sorted(valid), profile.permanent))
    project.write_plugin("chaos_plugin", PLUGIN)
    project.plugin = "chaos_plugin:migration"
    project.options.update(
        permanent=permanent, transient_rate=profile.transient_rate, seed=SEED, fixed=False
    )
    chaos_settings(project)
    project.write_config()
    project.run("provision", check=True)
    source = write_jsonl(project.root / "source.jsonl", rows)
    faulty = via(proxy.url)

    # 1. enqueue through the faults (a retried send that had gone through is a duplicate)
    proxy.plan = hostile(profile, SEED)
    enqueued = project.run_json("enqueue", source.name, env=faulty, timeout=profile.deadline_s)
    assert enqueued["enqueued"] == len(valid) and enqueued["invalid"] == profile.invalid, enqueued
    assert enqueued["failed"] == 0, enqueued

    # 2. four workers under faults and SIGKILLs, restarted until the queue is drained
    fleet = Fleet(
        project,
        ["worker", "--until-empty", "--concurrency", str(profile.concurrency)],
        faulty,
        size=profile.workers,
        kills=profile.kills,
        kill_window_s=profile.kill_window_s,
        rng=rng,
        deadline_s=profile.deadline_s,
    )
    chaos = fleet.run()
    faults = faults_injected(proxy.counts)
    proxy.plan = FaultPlan()
    assert chaos.kills >= 1, "no worker was killed: the kill window is too short"
    assert all(faults[kind] > 0 for kind in faults), faults

    # 3. before the fix: the known-permanent subset is in the DLQ, with its reason
    wait_until_settled(project, project.queue_name, project.dlq_name)
    inspected = project.run_json("dlq", "inspect", "--limit", str(10 * len(valid)))
    reasons: dict[str, set[str]] = {}
    for message in inspected["messages"]:
        reasons.setdefault(str(message["record_id"]), set()).add(str(message["reason"]))
    for rid in permanent:
        assert f"PermanentError: known-permanent: {rid} needs the fix" in reasons.get(rid, set()), (
            rid,
            reasons.get(rid),
        )
    in_dlq_before = len(inspected["messages"])
    assert inspected["complete"] is True

    # 4. the fix, a redrive, a final drain (the handler still fails transiently)
    project.options["fixed"] = True
    project.write_config()
    redriven = project.run_json("dlq", "redrive", env=faulty)
    assert redriven["moved"] == in_dlq_before and redriven["failed"] == 0, redriven
    final = project.run_json(
        "worker", "--until-empty", "--concurrency", "8", env=faulty, timeout=profile.deadline_s
    )
    assert final["stopped"] == "empty" and final["dead_lettered"] == 0, final

    # 5. the total-queue check, straight from the endpoint
    items = project.table_items()
    in_target = Counter(item["pk"]["S"] for item in items)
    effects = {item["pk"]["S"]: int(item["effects"]["N"]) for item in items}
    lost = sorted(valid - set(in_target))
    unexpected = sorted(set(in_target) - valid)
    duplicated = sorted(rid for rid, n in effects.items() if n != 1)
    duplicated += sorted(rid for rid, n in in_target.items() if n != 1)
    runs = runs_log(project)
    took_effect = Counter(r["rid"] for r in runs if r["event"] == "effect")
    noops = Counter(r["rid"] for r in runs if r["event"] == "noop")
    figures(
        f"worker/{profile.name}",
        {
            "records": len(valid),
            "invalid_lines": profile.invalid,
            "permanent": len(permanent),
            "faults": faults,
            "kills": chaos.kills,
            "worker_starts": chaos.starts,
            "worker_exits": dict(chaos.exits),
            "chaos_s": round(chaos.duration_s, 1),
            "enqueued_messages": enqueued["enqueued"],
            "dlq_before_fix": in_dlq_before,
            "redriven": redriven["moved"],
            "handler_runs": len(runs),
            "redeliveries_absorbed": sum(noops.values()),
            "lost": len(lost),
            "unexpected": len(unexpected),
            "duplicated": len(duplicated),
        },
    )
    assert lost == [] and unexpected == [] and duplicated == [], (lost, unexpected, duplicated)
    # the effects log agrees, within what a dropped response can hide (the write happened,
    # its answer was lost: the retry found the item and logged a no-op instead)
    assert all(n == 1 for n in took_effect.values()), took_effect.most_common(3)
    assert noops, "no redelivery of a migrated record happened: the scenario proved nothing"
    assert project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert project.depth(project.dlq_name) == {"visible": 0, "in_flight": 0, "delayed": 0}

    # 6. reconcile accounts for every line of the source, and nothing is missing
    result = project.run("reconcile", source.name, "--output", "json", timeout=profile.deadline_s)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["missing"] == [] and report["ok"] is True, report
    assert report["expected"] == len(rows)
    assert report["migrated"] == len(valid) and report["rejected"] == profile.invalid, report
