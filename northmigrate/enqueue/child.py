"""One shard of a fan-out, in Lambda: the state machine's child (``deploy`` with
``deploy.fan_out``; handler ``northmigrate.enqueue.child.handler``).

The event is one item of the Map: ``{"source": "s3://…", "shard": "I/N", "run": RUN_ID,
"store": "s3://BUCKET/northmigrate/fan-out/RUN_ID/", "listing": DIGEST}``. The child runs
the same enqueue as ``enqueue --shard I/N`` (it reads the records itself: Step Functions
never parses them, so every number stays exact), writes its rejects to the store, and
returns its counts.

It stops itself before Lambda's timeout: when the time left falls under ``margin_s``, it
stops reading, waits for SQS to confirm what it sent, saves where it stopped
(``state.json``: the object and line, the counts so far) and raises
:class:`ShardIncomplete`. The state machine retries the child, which resumes from that
state, so a shard larger than one invocation still sends every record once. A shard whose
records could not all be sent resumes from the first one not sent. A child killed outright
(out of memory) saves nothing: its retry resumes from the last state saved, sending again
what that invocation sent (at least once, as everywhere; the consumers are idempotent).
A source that cannot be read (a missing object, an unknown format, objects that changed
since the run started: ``listing``, the digest of the objects then) raises
:class:`ShardFailed`, which is not retried.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.inflight import MAX_IN_FLIGHT
from northmigrate.aws.queues import Queues
from northmigrate.config import Settings, load_settings
from northmigrate.enqueue.job import EnqueueReport, run
from northmigrate.enqueue.store import RunStore, ShardStore
from northmigrate.errors import EXIT_ATTENTION, AwsError, NorthmigrateError
from northmigrate.plugin import Migration, load_migration
from northmigrate.records.rejects import RejectsWriter
from northmigrate.sources import open_source
from northmigrate.sources.shard import parse_shard

COUNTS = ("read", "valid", "eligible", "ineligible", "invalid", "duplicates", "enqueued", "failed")
MAX_ERRORS = 100


class ShardIncomplete(Exception):
    """The shard stopped part-way and saved where; the state machine retries it."""


class ShardFailed(Exception):
    """The shard cannot go on (its source cannot be read); not retried."""


def margin_for(remaining_s: float) -> float:
    """How long before the timeout a child stops: a fifth of its time, 5 s to 2 minutes."""
    return max(5.0, min(120.0, remaining_s / 5))


def _summary(
    previous: Mapping[str, Any], report: EnqueueReport, shard: str, source: str, attempt: int
) -> dict[str, Any]:
    """The shard's counts over every attempt so far."""
    now = report.to_dict()
    counts = {key: int(previous.get(key, 0)) + int(now.get(key, 0)) for key in COUNTS}
    errors = [*previous.get("errors", []), *now["errors"]][:MAX_ERRORS]
    return {
        "source": source,
        "shard": shard,
        **counts,
        "errors": errors,
        "errors_total": int(previous.get("errors_total", 0)) + int(now["errors_total"]),
        "rejects": list(previous.get("rejects", [])),
        "attempts": attempt,
    }


def run_shard(
    event: Mapping[str, Any],
    *,
    settings: Settings,
    clients: AwsClients,
    migration: Migration[Any],
    remaining_s: Callable[[], float],
    margin_s: float,
    workdir: Path,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """Run (or resume) one shard; its counts, without the rejected items' details (those
    are in the store's ``report.json``). Raises ShardIncomplete or ShardFailed."""
    source, shard_text = str(event["source"]), str(event["shard"])
    shard = parse_shard(shard_text, env={})
    store = ShardStore(clients.client("s3"), RunStore.from_uri(str(event["store"])), shard)
    finished = store.report()
    if finished is not None:  # a retry of a shard that finished: nothing to send again
        return _returned(finished)
    state = store.state() or {}
    attempt = int(state.get("attempts", 0)) + 1
    sqs = clients.client("sqs")
    queues = Queues(sqs, settings.queue)
    url = queues.main_url()
    stop = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(poll_s):
            if remaining_s() < margin_s:
                stop.set()
                return

    watcher = threading.Thread(target=watch, name="nm-deadline", daemon=True)
    watcher.start()
    from_line, from_object = state.get("resume_from_line"), state.get("resume_from_object")
    rejects_path = workdir / f"rejects-{shard.index}-{attempt}.jsonl"
    try:
        listing = event.get("listing")
        opened = open_source(
            source,
            clients=clients,
            stop=stop,
            shard=shard,
            from_object=from_object,
            listing=None if listing is None else str(listing),
        )
        with RejectsWriter(rejects_path) as rejects:
            report = run(
                opened,
                migration,
                max_message_size=queues.max_message_size(url),
                sqs=sqs,
                queue_url=url,
                fifo=settings.queue.fifo,
                from_line=from_line,
                from_object=from_object,
                rejects=rejects,
                stop=stop,
                run_id=str(event.get("run") or "") or None,
            )
            written = rejects.count
    except AwsError:
        raise  # AWS unreachable or throttling: the state machine retries the child
    except NorthmigrateError as exc:  # the source cannot be opened: retrying will not help
        store.save_state(
            {**state, "attempts": attempt, "error": str(exc), "exit_code": exc.exit_code}
        )
        raise ShardFailed(f"shard {shard_text}: {exc}") from exc
    finally:
        done.set()
        watcher.join()
    summary = _summary(state, report, shard_text, source, attempt)
    if written:
        summary["rejects"].append(store.put_rejects(rejects_path, attempt))
    rejects_path.unlink(missing_ok=True)
    if report.complete:
        store.save_report(summary)
        return _returned(summary)
    error = report.error
    if error is not None and not isinstance(error, AwsError):  # the source broke: exit 2
        store.save_state({**summary, "error": str(error), "exit_code": error.exit_code})
        raise ShardFailed(f"shard {shard_text}: {error}")
    position = {"resume_from_line": from_line, "resume_from_object": from_object}
    if report.resume_from_line is not None:
        position = {
            "resume_from_line": report.resume_from_line,
            "resume_from_object": report.resume_from_object,
        }
    why = "the time left ran short" if stop.is_set() else str(error or "records not sent")
    code = error.exit_code if error is not None else EXIT_ATTENTION
    store.save_state({**summary, **position, "error": why, "exit_code": code})
    raise ShardIncomplete(
        f"shard {shard_text} stopped ({why}) and resumes from line "
        f"{position['resume_from_line']}"
        + (f" of {position['resume_from_object']}" if position["resume_from_object"] else "")
    )


def _returned(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the child returns to the state machine: counts only (no record ids)."""
    return {key: summary[key] for key in ("source", "shard", *COUNTS, "errors_total", "attempts")}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point; configuration from the environment, as the worker's."""
    settings = load_settings(None, os.environ)
    clients = AwsClients(settings.aws, pool_size=MAX_IN_FLIGHT)
    migration = load_migration(settings.migration.plugin)

    def remaining_s() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    with tempfile.TemporaryDirectory(prefix="northmigrate-shard-") as tmp:
        return run_shard(
            event,
            settings=settings,
            clients=clients,
            migration=migration,
            remaining_s=remaining_s,
            margin_s=margin_for(remaining_s()),
            workdir=Path(tmp),
        )


__all__ = ["ShardFailed", "ShardIncomplete", "handler", "margin_for", "run_shard"]
