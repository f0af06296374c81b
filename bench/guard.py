"""Benchmark: three kinds of failure, each with the guard on and off, side by side, in one run.

    python bench/guard.py              # needs ministack: make ministack

The local worker drains a queue on ministack (the guard works the same on Lambda, where each
instance keeps its own window), with the defaults but ``max_receive_count = 3``:

- **bug at the head**: the first tenth of a sorted export hits one bug (``ValueError``).
  Time to finish, and the good records left unmigrated when the worker stopped (blocked).
  Target: with the guard, none blocked, the bad ones in the DLQ.
- **throttling**: the target takes at most ``--limit`` records a second and throttles the
  rest (about half of the worker's unpaced rate). Records dead-lettered, the share of
  throttled tries, and the rate of tries the target saw against its limit. Target: with the
  guard, none dead-lettered and the rate the target sees within twice its limit.
- **outage**: after a fifth of the records the target is down for ``--outage-s`` seconds.
  Records burnt (dead-lettered), and the seconds from the target's recovery to the tap's
  reopening. Target: with the guard, none burnt and the reopening within one probe interval
  plus ten seconds (one record and the tap's cache).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from _common import endpoints, machine, onboarding_messages, send_all
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    scenario: str
    guard: bool
    records: int
    migrated: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


def settings_for(endpoint: str, guard: bool, probe_s: float) -> Any:
    from northmigrate.config import (
        AwsSettings,
        GuardSettings,
        MigrationSettings,
        QueueSettings,
        Settings,
        WorkerSettings,
    )

    return Settings(
        aws=AwsSettings(endpoint_url=endpoint, region="us-east-1"),
        queue=QueueSettings(
            name=f"night-{uuid.uuid4().hex[:8]}", visibility_timeout=30, max_receive_count=3
        ),
        migration=MigrationSettings(plugin="bench:none"),
        worker=WorkerSettings(concurrency=8, wait_time_s=1),
        guard=GuardSettings(enabled=guard, probe_interval_s=probe_s),
    )


def night(
    endpoint: str, guard: bool, records: int, probe_s: float, fail: Any, ready: Any = None
) -> Row:
    """One drain of ``records`` with ``fail(record_id)`` raising for the failing ones;
    ``ready(queues)`` hears of the queues before the drain."""
    from northmigrate.aws.clients import AwsClients
    from northmigrate.aws.queues import Queues
    from northmigrate.aws.sqs.queue import depth
    from northmigrate.consume.worker import Worker
    from northmigrate.control.provision import provision
    from northmigrate.examples.onboarding import OnboardingRecord
    from northmigrate.plugin import Migration

    lock = threading.Lock()
    migrated: set[str] = set()

    def handler(record: OnboardingRecord, ctx: object) -> None:
        fail(record.application_id)
        with lock:
            migrated.add(record.application_id)

    migration = Migration(
        name="onboarding-v2", model=OnboardingRecord, key="application_id", handler=handler
    )
    settings = settings_for(endpoint, guard, probe_s)
    clients = AwsClients(settings.aws, pool_size=12)
    provision(clients, settings, migration)
    queues = Queues(clients.client("sqs"), settings.queue)
    send_all(queues.sqs, queues.main_url(), onboarding_messages(records, seed=11))
    if ready is not None:
        ready(queues)
    started = time.perf_counter()
    Worker(clients, settings, migration).run(until_empty=True)
    row = Row("", guard, records, len(migrated))
    row.seconds = time.perf_counter() - started
    row.dead_lettered = depth(queues.sqs, queues.dlq_url()).total
    return row


def ids(records: int) -> list[str]:
    """The records' ids in the order they were sent (a sorted export)."""
    return [json.loads(m.body)["record_id"] for m in onboarding_messages(records, seed=11)]


def bug_at_the_head(endpoint: str, guard: bool, records: int, probe_s: float) -> Row:
    bad = set(ids(records)[: records // 10])

    def fail(record_id: str) -> None:
        if record_id in bad:
            raise ValueError("province missing")

    row = night(endpoint, guard, records, probe_s, fail)
    row.scenario = "bug at the head"
    row.figures = {"failing": len(bad), "blocked": records - len(bad) - row.migrated}
    return row


def throttling(endpoint: str, guard: bool, records: int, probe_s: float, limit: int) -> Row:
    lock = threading.Lock()
    second = [0.0, 0]  # the current second, and the records taken in it
    tries = [0, 0]  # tries, throttled

    def fail(record_id: str) -> None:
        with lock:
            now = time.monotonic()
            if now - second[0] >= 1.0:
                second[0], second[1] = now, 0
            tries[0] += 1
            if second[1] >= limit:
                tries[1] += 1
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                    "PutItem",
                )
            second[1] += 1

    row = night(endpoint, guard, records, probe_s, fail)
    row.scenario = "throttling"
    row.figures = {
        "throttled_share": round(tries[1] / max(1, tries[0]), 2),
        "tries_per_s": round(tries[0] / row.seconds, 1),
        "limit_per_s": limit,
    }
    return row


def outage(endpoint: str, guard: bool, records: int, probe_s: float, outage_s: float) -> Row:
    from northmigrate import TargetUnavailable
    from northmigrate.consume.tap import read_state

    state = {"down_at": None, "up_at": None, "reopened_at": None, "ok": 0}
    lock = threading.Lock()
    after = records // 5

    def fail(record_id: str) -> None:
        with lock:
            now = time.monotonic()
            if state["down_at"] is None and state["ok"] >= after:
                state["down_at"] = now
            down_at = state["down_at"]
            if down_at is not None and now - down_at < outage_s:
                raise TargetUnavailable("503 from the onboarding service")  # an outage
            if down_at is not None and state["up_at"] is None:
                state["up_at"] = down_at + outage_s
            state["ok"] += 1

    stop = threading.Event()
    watched: dict[str, Any] = {}

    def watch() -> None:  # when the tap opens again after the guard closed it
        closed = False
        while not stop.wait(0.5):
            queues = watched.get("q")
            if queues is None:
                continue
            tap = read_state(queues.sqs, queues.main_url())
            closed = closed or not tap.open
            if closed and tap.open and state["reopened_at"] is None:
                state["reopened_at"] = time.monotonic()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    row = night(endpoint, guard, records, probe_s, fail, ready=lambda q: watched.update(q=q))
    stop.set()
    watcher.join()
    up, reopened = state["up_at"], state["reopened_at"]
    row.scenario = f"outage of {outage_s:.0f} s"
    row.figures = {
        "burnt": row.dead_lettered,
        "recovery_to_reopen_s": None if up is None or reopened is None else round(reopened - up, 1),
        "probe_interval_s": probe_s,
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--limit", type=int, default=40, help="the target's records a second")
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--probe-s", type=float, default=30.0, help="guard.probe_interval_s")
    args = parser.parse_args()
    rows: list[Row] = []
    with endpoints(0) as urls:
        url = urls["loopback"]
        for guard in (True, False):
            print(f"… bug at the head, guard {'on' if guard else 'off'}", file=sys.stderr)
            rows.append(bug_at_the_head(url, guard, args.records, args.probe_s))
        for guard in (True, False):
            print(f"… throttling, guard {'on' if guard else 'off'}", file=sys.stderr)
            rows.append(throttling(url, guard, args.records, args.probe_s, args.limit))
        for guard in (True, False):
            print(f"… outage, guard {'on' if guard else 'off'}", file=sys.stderr)
            rows.append(outage(url, guard, args.records, args.probe_s, args.outage_s))
    table = Table(title=f"three kinds of failure, {args.records} records, ministack ({machine()})")
    for column in ("scenario", "guard", "migrated", "dead-lettered", "seconds", "figures"):
        table.add_column(column, justify="left" if column in ("scenario", "figures") else "right")
    for r in rows:
        shown = ", ".join(f"{k}: {v}" for k, v in r.figures.items())
        table.add_row(
            r.scenario, "on" if r.guard else "off", str(r.migrated), str(r.dead_lettered),
            f"{r.seconds:.1f}", shown,
        )  # fmt: skip
    Console(width=200).print(table)
    bug, _, throttled, _, down, _ = rows
    reopen = down.figures["recovery_to_reopen_s"]
    checks = {
        "bug at the head: none blocked, the bad ones in the DLQ": bug.figures["blocked"] == 0
        and bug.dead_lettered == bug.figures["failing"],
        "throttling: none dead-lettered, the target's rate within twice its limit": (
            throttled.dead_lettered == 0 and throttled.figures["tries_per_s"] <= 2 * args.limit
        ),
        "outage: none burnt, reopened within a probe interval and 10 s": down.dead_lettered == 0
        and reopen is not None
        and reopen <= args.probe_s + 10,
    }
    for name, ok in checks.items():
        print(json.dumps({"target": name, "verdict": "PASS" if ok else "MISS"}))


if __name__ == "__main__":
    main()
