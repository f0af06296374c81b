"""``enqueue s3://… --fan-out N``: the shards run on Step Functions (docs/deploy.md)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import typer

from northmigrate.cli.output import OutputFormat, say
from northmigrate.cli.progress import Figures, progress_line
from northmigrate.cli.records import _finish
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import State
from northmigrate.enqueue import fanout, fanout_resume
from northmigrate.enqueue.job import EnqueueReport, new_run_id
from northmigrate.errors import EXIT_ATTENTION, ConfigError, InputError
from northmigrate.sources import open_source
from northmigrate.sources.names import kind_of
from northmigrate.sources.s3 import listing_of

FAN_OUT_HELP = (
    "s3:// only: run N shards on Step Functions, one Lambda child each (deploy with "
    "deploy.fan_out); auto: one per 256 MiB of source."
)
RESUME_HELP = (
    "s3:// only: run again the shards of the fan-out run RUN that did not finish, each from "
    "where it stopped (or follow the run while it still runs)."
)


def shard_count(text: str) -> int | None:
    """``--fan-out``'s N (None: auto). Exit 2 when it is neither."""
    if text.strip().lower() == "auto":
        return None
    if not text.strip().isdigit() or not 1 <= int(text) <= fanout.MAX_SHARDS:
        raise InputError(
            f"--fan-out {text!r} is not a shard count",
            hint=f"a whole number from 1 to {fanout.MAX_SHARDS}, or auto",
        )
    return int(text)


def check_flags(source: str, given: dict[str, bool], by: str = "--fan-out") -> None:
    """Refuse what does not go with ``by`` (``--fan-out`` or ``--resume-fan-out``; exit 2),
    before anything is read."""
    if kind_of(source) != "s3":
        raise InputError(
            f"{by} reads S3 sources (s3://BUCKET/KEY or s3://BUCKET/PREFIX/), not {source}",
            hint="for a file or a table, run enqueue --shard I/N on several machines",
        )
    for flag, on in given.items():
        if on:
            raise InputError(f"{flag} does not go with {by}")


def _figures(p: fanout.MapProgress) -> Figures:
    done = f"{p.succeeded:,}/{p.total:,} shards done"
    rest = f"{p.running:,} running, {p.failed:,} failed"
    return Figures(
        p.succeeded + p.failed,
        p.total or None,
        [f"fan-out · {done} · {rest}", f"{done} · {rest}", done],
    )


def run_fan_out(
    st: State, source: str, count: str | None, output: OutputFormat, resume_run: str | None = None
) -> None:
    """Start the fan-out (or resume the run ``resume_run``), follow it, print the totals as
    a local run does."""
    wanted = None if count is None else shard_count(count)
    settings = st.settings
    d = settings.deploy
    if not d.fan_out or not d.fan_out_bucket:
        raise ConfigError(
            f"{'--fan-out' if resume_run is None else '--resume-fan-out'} needs the fan-out "
            "deployed",
            hint="set deploy.fan_out = true, deploy.fan_out_bucket and "
            "deploy.fan_out_sources, then run northmigrate deploy",
        )
    allowed = [
        uri if uri.endswith("/") or "/" in uri[5:] else uri + "/" for uri in d.fan_out_sources
    ]
    if not any(source.startswith(prefix) for prefix in allowed):
        raise ConfigError(
            f"the enqueue function may not read {source}: deploy.fan_out_sources names "
            + (", ".join(allowed) or "nothing"),
            hint="add it to deploy.fan_out_sources and run northmigrate deploy",
        )
    clients = st.clients()
    queues = st.queues()
    queue_arn = queues.attributes(queues.main_url(), ["QueueArn"])["QueueArn"]
    machine = fanout.state_machine_arn(queue_arn, fanout.state_machine_name(settings.queue.name))
    opened = open_source(source, clients=clients)  # lists it: a bad source is exit 2 here
    total = opened.progress()[1] or 0
    listing = listing_of(opened)
    opened.close()
    sfn, s3 = clients.client("stepfunctions"), clients.client("s3")
    report = EnqueueReport(run_id=resume_run or new_run_id(), source=source, listing=listing)
    started = time.monotonic()
    with ExitStack() as stack:
        stop = stack.enter_context(graceful_stop("stopping the fan-out's execution"))
        update = stack.enter_context(progress_line(output, "fan-out"))
        if resume_run is None:
            run = fanout.start(
                sfn,
                s3,
                machine_arn=machine,
                source=source,
                shards=wanted or fanout.default_shards(total),
                bucket=d.fan_out_bucket,
                run_id=report.run_id,
                listing=listing,
            )
        else:
            run = fanout_resume.resume(
                sfn,
                s3,
                machine_arn=machine,
                source=source,
                bucket=d.fan_out_bucket,
                run_id=resume_run,
                listing=listing,
                function_timeout_s=d.fan_out_timeout_s,
                wait=stop.wait,
                on_wait=lambda seconds: say(
                    "[yellow]the run's last execution was stopped, timed out or failed, and "
                    "an invocation it started may run {} s (fan_out_timeout_s): waiting {} s "
                    "before its shards run again[/yellow]",
                    str(d.fan_out_timeout_s),
                    f"{seconds:.0f}",
                ),
            )
        last = fanout.wait(sfn, run, on_progress=lambda p: update(_figures(p)), stop=stop)
    fanout.totals(s3, run, report)
    report.duration_s = time.monotonic() - started
    extra: dict[str, Any] = {
        "fan_out": {
            "shards": run.shards,
            "execution": run.execution_arn,
            "status": last.status,
            "store": run.store.uri,
            "action": run.action,  # started, resumed, followed or finished
            "ran": run.running,  # the shards this execution ran (followed: not known)
        },
        "rejects": run.rejects,
    }
    notes: list[tuple[str, ...]] = []
    if run.action == "followed":
        notes.append(
            ("[yellow]the run {} was still running: followed it[/yellow]", run.store.run_id)
        )
    elif run.action == "finished":
        notes.append(
            ("[yellow]every shard of {} had finished: nothing ran again[/yellow]", run.store.run_id)
        )
    if last.error:
        notes.append(("[yellow]the execution ended {}: {}[/yellow]", last.status, last.error))
    _finish(report, output, "enqueue (fan-out)", extra, notes)
    if report.failed:
        raise typer.Exit(EXIT_ATTENTION)


__all__ = ["FAN_OUT_HELP", "RESUME_HELP", "check_flags", "run_fan_out", "shard_count"]
