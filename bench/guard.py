"""Benchmark: the guard's effect on an outage of the new service, with and without it, in one run.

    python bench/guard.py              # needs ministack: make ministack

A 2,000-record run on ministack, drained by the worker (the guard works the same on Lambda,
where each instance keeps its own window). After the first 300 records are migrated, the
new service goes down (the handler raises ``TargetUnavailable``). With the guard (its
default thresholds), the worker that sees the failures closes the tap and stops; the outage
ends, the operator runs ``tap open``, and the worker migrates the rest. Without it, the
worker goes on through the outage: every record it takes uses up its tries and is
dead-lettered. Retries have no backoff here, so the outage outlasts every record's tries
(a production backoff only makes the run longer).

Targets: with the guard, the DLQ holds at most the guard's window of records and nothing is
lost; without it, the DLQ holds most of the records the outage met.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from _common import endpoints, machine, onboarding_messages, send_all
from rich.console import Console
from rich.table import Table


class TargetUnavailable(Exception):
    """The new service answers 503."""


@dataclass
class Night:
    scenario: str
    records: int
    before_outage: int
    dead_lettered: int
    stopped_by: str
    waiting_when_stopped: int
    migrated_after_resume: int
    migrated: int
    lost: int
    seconds: float


def run_night(endpoint: str, records: int, guard: bool, outage_after: int) -> Night:
    from northmigrate.aws.clients import AwsClients
    from northmigrate.aws.queues import Queues
    from northmigrate.aws.sqs.queue import depth
    from northmigrate.config import (
        AwsSettings,
        GuardSettings,
        MigrationSettings,
        QueueSettings,
        Settings,
        WorkerSettings,
    )
    from northmigrate.consume.tap import Tap
    from northmigrate.consume.worker import Worker
    from northmigrate.control.provision import provision
    from northmigrate.examples.onboarding import OnboardingRecord
    from northmigrate.plugin import Migration

    lock = threading.Lock()
    migrated: set[str] = set()
    outage = threading.Event()
    began = threading.Event()  # the outage comes once

    def handler(record: OnboardingRecord, ctx: object) -> None:
        if outage.is_set():
            raise TargetUnavailable("503 from the onboarding service")
        with lock:
            migrated.add(record.application_id)
            if len(migrated) >= outage_after and not began.is_set():
                began.set()
                outage.set()

    migration = Migration(
        name="onboarding-v2", model=OnboardingRecord, key="application_id", handler=handler
    )
    settings = Settings(
        aws=AwsSettings(endpoint_url=endpoint, region="us-east-1"),
        queue=QueueSettings(
            name=f"night-{uuid.uuid4().hex[:8]}", visibility_timeout=30, max_receive_count=3
        ),
        migration=MigrationSettings(plugin="bench:none"),
        worker=WorkerSettings(concurrency=8, wait_time_s=1, backoff_base_s=0, backoff_max_s=0),
        guard=GuardSettings(enabled=guard),
    )
    clients = AwsClients(settings.aws, pool_size=12)
    provision(clients, settings, migration)
    queues = Queues(clients.client("sqs"), settings.queue)
    send_all(queues.sqs, queues.main_url(), onboarding_messages(records, seed=11))
    started = time.perf_counter()
    first = Worker(clients, settings, migration).run(until_empty=True)
    before = outage_after
    stopped = first.stopped or "empty"
    left = depth(queues.sqs, queues.main_url())
    waiting = left.visible + left.in_flight + left.delayed
    dead = depth(queues.sqs, queues.dlq_url()).total
    after = 0
    if guard:
        outage.clear()  # the new service is back; the operator reopens the tap
        Tap(clients, queues).open()
        count = len(migrated)
        Worker(clients, settings, migration).run(until_empty=True)
        after = len(migrated) - count
        dead = depth(queues.sqs, queues.dlq_url()).total
    left = depth(queues.sqs, queues.main_url())
    in_queues = left.visible + left.in_flight + left.delayed + dead
    return Night(
        scenario="with the guard" if guard else "without the guard",
        records=records,
        before_outage=before,
        dead_lettered=dead,
        stopped_by=stopped,
        waiting_when_stopped=waiting,
        migrated_after_resume=after,
        migrated=len(migrated),
        lost=records - len(migrated) - in_queues,
        seconds=time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--outage-after", type=int, default=300, help="records migrated first")
    args = parser.parse_args()
    outage_after = args.outage_after
    from northmigrate.config import GuardSettings

    window = GuardSettings().window
    nights: list[Night] = []
    with endpoints(0) as urls:
        for guard in (True, False):
            print(f"… {args.records} records, guard {'on' if guard else 'off'}", file=sys.stderr)
            nights.append(run_night(urls["loopback"], args.records, guard, outage_after))
    table = Table(title=f"an outage after {outage_after} records, ministack ({machine()})")
    for column in (
        "scenario", "records", "worker stopped", "waiting in the queue", "dead-lettered",
        "migrated after tap open", "migrated", "lost", "seconds",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for n in nights:
        table.add_row(
            n.scenario, str(n.records), n.stopped_by, str(n.waiting_when_stopped),
            str(n.dead_lettered), str(n.migrated_after_resume), str(n.migrated), str(n.lost),
            f"{n.seconds:.1f}",
        )  # fmt: skip
    Console(width=200).print(table)
    guarded, unguarded = nights
    met = unguarded.records - outage_after  # the records the outage met
    checks = {
        "guard: DLQ within the window, nothing lost": guarded.dead_lettered <= window
        and guarded.lost == 0
        and guarded.migrated == guarded.records,
        "no guard: the DLQ holds most of what the outage met": unguarded.dead_lettered > met // 2,
    }
    for name, ok in checks.items():
        print(json.dumps({"target": name, "verdict": "PASS" if ok else "MISS"}))


if __name__ == "__main__":
    main()
