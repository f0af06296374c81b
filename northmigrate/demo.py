"""The story of a migration, end to end, on an embedded endpoint, in one process.

Provision; generate onboarding records (some invalid, some ineligible); validate and enqueue
them while workers drain the queue; an outage of the new service and a bug make some records
fail, and they collect in the DLQ; inspect it; the fix ships; redrive; the last records
migrate; reconcile accounts for every record. The CLI narrates it (``northmigrate demo``);
this module only runs it, step by step, and reports each result to a ``Narrator``.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from northmigrate import enqueue as enqueue_lib
from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.config import (
    AwsSettings,
    GuardSettings,
    MigrationSettings,
    QueueSettings,
    Settings,
    WorkerSettings,
)
from northmigrate.consume.worker import Worker, WorkerReport
from northmigrate.control.provision import provision
from northmigrate.control.reconcile import reconcile
from northmigrate.dlq.inspect import inspect
from northmigrate.dlq.letters import record_reasons
from northmigrate.dlq.redrive import redrive
from northmigrate.examples.onboarding import migration as onboarding
from northmigrate.records import sample
from northmigrate.records.rejects import RejectsWriter
from northmigrate.sources import open_source

PLUGIN = "northmigrate.examples.onboarding:migration"
OUTAGE_REGIONS = ["ON"]
UNSUPPORTED_TYPES = ["nonprofit"]


class Narrator(Protocol):
    def step(self, number: int, title: str, why: str) -> None: ...

    def result(self, kind: str, data: Any) -> None: ...

    def note(self, text: str) -> None: ...

    def busy(self, text: str) -> AbstractContextManager[Callable[[str], None]]:
        """A step that takes a while: shown as working on ``text`` (a spinner) until the
        block ends; the callable it gives tells what is happening now."""
        ...


@dataclass
class DemoResult:
    directory: Path
    config_file: Path
    endpoint: str
    reconcile: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.reconcile.get("ok"))


def demo_settings(endpoint: str, options: dict[str, Any]) -> Settings:
    return Settings(
        aws=AwsSettings(region="us-east-1", endpoint_url=endpoint, max_attempts=3),
        queue=QueueSettings(name="demo-onboarding", max_receive_count=3, visibility_timeout=10),
        migration=MigrationSettings(plugin=PLUGIN, options=options),
        worker=WorkerSettings(concurrency=8, wait_time_s=1, backoff_base_s=0.3, backoff_max_s=2),
        # The demo stages its outage and its bug to fill the DLQ, so the guard (which would
        # close the tap half-way, as it should on a real night) stays out of this story.
        guard=GuardSettings(enabled=False),
    )


def write_config(path: Path, settings: Settings) -> None:
    """The demo's settings as a config file, for exploring by hand afterwards."""
    table = settings.migration.options.get("table", "onboarding-v2")
    path.write_text(
        "# Written by northmigrate demo: the setup it ran against.\n"
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{settings.aws.endpoint_url}"\n\n'
        f'[queue]\nname = "{settings.queue.name}"\n'
        f"max_receive_count = {settings.queue.max_receive_count}\n"
        f"visibility_timeout = {settings.queue.visibility_timeout}\n\n"
        f'[migration]\nplugin = "{PLUGIN}"\n\n[migration.options]\ntable = "{table}"\n\n'
        f"[worker]\nconcurrency = {settings.worker.concurrency}\n"
        f"wait_time_s = {settings.worker.wait_time_s}\n"
        f"backoff_base_s = {settings.worker.backoff_base_s}\n"
        f"backoff_max_s = {settings.worker.backoff_max_s}\n\n"
        f"[guard]\nenabled = {str(settings.guard.enabled).lower()}\n"
    )


def _drain_while(
    clients: AwsClients,
    settings: Settings,
    busy: Callable[[], bool],
    queues: Queues,
    tick: Callable[[WorkerReport | None], None] = lambda _: None,
) -> WorkerReport:
    """Run a worker until ``busy()`` is false and the main queue is empty; ``tick`` hears
    of the worker's progress every half second."""
    stop = threading.Event()
    box: dict[str, WorkerReport] = {}
    seen: list[WorkerReport] = []  # the latest snapshot of the worker's progress

    def progress(report: WorkerReport) -> None:
        seen[:] = [report]

    worker = Worker(
        clients, settings, onboarding, stop=stop, grace_period_s=10, on_progress=progress
    )
    thread = threading.Thread(target=lambda: box.setdefault("r", worker.run()), daemon=True)
    thread.start()
    url = queues.main_url()
    while True:
        time.sleep(0.5)
        tick(seen[0] if seen else None)
        if not busy() and queues.depth(url).total == 0:
            break
    stop.set()
    thread.join(timeout=60)
    return box["r"]


def run_demo(
    endpoint: str,
    narrator: Narrator,
    *,
    records: int = 300,
    directory: Path | None = None,
    pause: Callable[[], None] = lambda: None,
) -> DemoResult:
    workdir = directory or Path(tempfile.mkdtemp(prefix="northmigrate-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "table": "demo-onboarding-v2",
        "outage_regions": OUTAGE_REGIONS,
        "unsupported_business_types": UNSUPPORTED_TYPES,
    }
    settings = demo_settings(endpoint, options)
    config_file = workdir / "northmigrate.toml"
    write_config(config_file, settings)
    result = DemoResult(workdir, config_file, endpoint)
    clients = AwsClients(settings.aws, pool_size=settings.worker.concurrency + 4)
    queues = Queues(clients.client("sqs"), settings.queue)

    narrator.step(
        1,
        "Provision",
        "The main queue, its dead-letter queue (after 3 failed receives a message moves there), "
        "and the new service's DynamoDB table.",
    )
    narrator.result("provision", provision(clients, settings, onboarding).to_dict())
    pause()

    source = workdir / "onboarding.jsonl"
    narrator.step(
        2,
        "Export the old system",
        f"{records} onboarding applications, as the old service holds them: a few are broken, "
        "a few are drafts or withdrawn (not eligible to move), one or two appear twice.",
    )
    with source.open("w") as out:
        sample.write(
            sample.generate(records, invalid_rate=0.04, duplicate_rate=0.02, seed=2026), out
        )
    narrator.note(f"wrote {source}")
    pause()

    narrator.step(
        3,
        "Validate, enqueue, migrate",
        "Every record is checked against the model; each eligible one becomes one SQS "
        "message, and workers migrate them as they arrive. The new service is down for "
        f"businesses in {', '.join(OUTAGE_REGIONS)} (an outage: retried with backoff, then "
        f"dead-lettered), and it cannot take {', '.join(UNSUPPORTED_TYPES)} businesses yet "
        "(a bug: dead-lettered at once).",
    )
    done = threading.Event()
    box: dict[str, enqueue_lib.EnqueueReport] = {}

    def send() -> None:
        with RejectsWriter(workdir / "rejects.jsonl") as rejects:
            box["r"] = enqueue_lib.run(
                open_source(str(source)),
                onboarding,
                max_message_size=queues.max_message_size(queues.main_url()),
                sqs=queues.sqs,
                queue_url=queues.main_url(),
                rejects=rejects,
                progress=lambda r: box.update(sending=r),
            )
        done.set()

    with narrator.busy("validating, enqueueing and migrating") as tell:

        def tick(worker: WorkerReport | None) -> None:
            sending = box.get("r") or box.get("sending")
            sent = sending.enqueued if sending else 0
            w = worker or WorkerReport()
            tell(
                f"sent {sent} · migrated {w.succeeded} · retried {w.retried} · "
                f"dead-lettered {w.dead_lettered}"
            )

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        first = _drain_while(clients, settings, lambda: not done.is_set(), queues, tick)
        sender.join()
    report = box["r"]
    narrator.result("enqueue", report.to_dict())
    narrator.result("worker", first.to_dict())
    pause()
    return _second_half(result, narrator, clients, settings, queues, source, report, pause)


def _second_half(
    result: DemoResult,
    narrator: Narrator,
    clients: AwsClients,
    settings: Settings,
    queues: Queues,
    source: Path,
    enqueued: enqueue_lib.EnqueueReport,
    pause: Callable[[], None],
) -> DemoResult:
    sqs = queues.sqs
    narrator.step(
        4,
        "Look at the dead-letter queue",
        "SQS has no peek: inspect reads every dead letter, counts the reasons the worker "
        "attached, and makes each message visible again at once. Names, dates of birth and "
        "tax ids stay masked.",
    )
    inspected = inspect(sqs, queues.dlq_url(), sensitive=onboarding.sensitive, limit=2)
    narrator.result("inspect", inspected.to_dict())
    pause()

    options = {"table": settings.migration.options["table"]}
    fixed = settings.model_copy(
        update={"migration": MigrationSettings(plugin=PLUGIN, options=options)}
    )
    narrator.step(
        5,
        "The fix ships",
        "The new service is back up and takes every business type. Nothing was lost: the "
        "failed records wait in the DLQ.",
    )
    pause()

    narrator.step(
        6,
        "Redrive",
        "Move the dead letters back to the main queue: each is sent, confirmed, and only then "
        "deleted from the DLQ. Workers migrate them.",
    )
    moved = redrive(sqs, queues.dlq_url(), queues.main_url())
    narrator.result("redrive", moved.to_dict())
    final = Worker(clients, fixed, onboarding, grace_period_s=10).run(until_empty=True)
    narrator.result("worker", final.to_dict())
    pause()

    narrator.step(
        7,
        "Reconcile",
        "Every record of the export, accounted for: migrated (verified in the new table), "
        "rejected (with its reason), dead-lettered, still queued, or missing.",
    )
    report = reconcile(
        open_source(str(source)),
        onboarding,
        clients,
        queues,
        options,
        peek=record_reasons,
        max_message_size=settings.queue.max_message_size,
    )
    result.reconcile = report.to_dict()
    narrator.result("reconcile", result.reconcile)
    return result
