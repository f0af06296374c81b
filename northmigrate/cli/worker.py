"""The worker command: drain the main queue into the new service."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console

from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, key_value_table, plain
from northmigrate.cli.progress import progress_line, worker_figures
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import State, state
from northmigrate.consume.events import JsonLines, fan_out
from northmigrate.consume.metrics import CloudWatchPublisher, EmfWriter, MetricsSink
from northmigrate.consume.worker import Worker, WorkerReport
from northmigrate.errors import InputError
from northmigrate.privatefile import open_private


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class MetricsFormat(StrEnum):
    none = "none"
    emf = "emf"
    cloudwatch = "cloudwatch"


def waiting_teller(as_json: bool) -> Callable[[dict[str, Any]], None]:
    """What a waiting worker waits for, on stderr: a JSON line (``--log-format json`` or
    ``--output json``) or one sentence."""
    if as_json:
        return JsonLines(sys.stderr)

    def tell(event: dict[str, Any]) -> None:
        sys.stderr.write(
            f"\nwaiting for the tap to open: closed by {plain(event.get('closed_by') or '?')} "
            f"since {plain(event.get('since') or '?')} "
            f"({plain(event.get('reason') or 'no reason given')}); "
            f"what reopens it: {plain(event.get('reopens'))}\n"
        )
        sys.stderr.flush()

    return tell


@contextmanager
def metrics_sink(
    kind: MetricsFormat, path: Path | None, output: OutputFormat, migration: str, st: State
) -> Iterator[MetricsSink | None]:
    """The ``--metrics`` consumer of record events, flushed a last time on the way out."""
    if path is not None and kind is not MetricsFormat.emf:
        raise InputError("--metrics-file goes with --metrics emf")
    if kind is MetricsFormat.none:
        yield None
        return
    stream: IO[str] | None = None
    if kind is MetricsFormat.cloudwatch:
        sink = MetricsSink(CloudWatchPublisher(migration, st.clients().client("cloudwatch")))
    elif path is not None:
        stream = open_private(path, "metrics file", append=True)
        sink = MetricsSink(EmfWriter(migration, stream))
    elif output is OutputFormat.json:
        raise InputError(
            "--metrics emf writes to stdout, which --output json keeps for its summary",
            hint="add --metrics-file PATH",
        )
    else:
        sink = MetricsSink(EmfWriter(migration, sys.stdout))
    try:
        yield sink
    finally:
        sink.close()
        if stream is not None:
            stream.close()


def _render(report: WorkerReport, console: Console) -> None:
    rows: list[tuple[str, object]] = [
        ("queue", report.queue),
        ("concurrency", report.concurrency),
        ("received", report.received),
        ("succeeded", report.succeeded),
        ("retried", report.retried),
        ("dead-lettered", report.dead_lettered),
        ("handed back", report.released),
        ("abandoned", report.abandoned),
        ("delete failed", report.delete_failed),
        ("seconds", f"{report.duration_s:.2f}"),
        ("records/s", f"{report.rate:.1f}"),
        ("stopped", report.stopped),
    ]
    console.print(key_value_table("worker", rows))
    if report.reasons:
        reasons = [(reason, count) for reason, count in report.reasons.most_common(10)]
        console.print(key_value_table("dead-letter reasons", reasons))


def worker(
    ctx: typer.Context,
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-j",
        min=1,
        max=512,
        help="Records processed at once (default: worker.concurrency).",
    ),
    until_empty: bool = typer.Option(
        False,
        "--until-empty",
        help="Drain the queue, then exit: nothing visible, in flight or delayed is left.",
    ),
    max_messages: int | None = typer.Option(
        None, "--max-messages", "-n", min=1, help="Receive at most N messages, finish them, exit."
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="At most R records per second across the pool."
    ),
    grace: float | None = typer.Option(
        None,
        "--grace",
        min=0,
        help="Seconds a stopping worker lets started records finish (default: "
        "worker.grace_period_s).",
    ),
    log_format: LogFormat = typer.Option(
        LogFormat.text,
        "--log-format",
        case_sensitive=False,
        help="json: one JSON object per line on stderr for each record outcome (migrated, "
        "retried, dead_lettered, released), the same as the Lambda handler's.",
    ),
    metrics: MetricsFormat = typer.Option(
        MetricsFormat.none,
        "--metrics",
        case_sensitive=False,
        help="emf: CloudWatch embedded metric format lines (stdout, or --metrics-file), the "
        "Lambda handler's metrics; cloudwatch: the same sent with PutMetricData. Once a "
        "minute and at the end.",
    ),
    metrics_file: Path | None = typer.Option(
        None, "--metrics-file", help="Append the EMF lines of --metrics emf to this file."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Poll the main queue and migrate each record with the plugin's handler.

    A message is deleted only once its record is migrated, safely in the DLQ, or retried as
    a delayed copy SQS confirmed. Each failure has a kind: a record error (a bug) is retried
    within seconds until the handler has tried queue.max_receive_count times, then
    dead-lettered with its reason, while the other records go on; a throttled try is not
    charged (the record comes back later) and the guard lowers the tap's limit; an outage is
    retried with patience and, when it persists, the guard closes the tap and probes every
    guard.probe_interval_s until the target answers, then opens it again (guard.reopen =
    "manual": the worker exits 1 instead). PermanentError, unreadable messages and invalid
    records are dead-lettered at once. A worker whose tap is closed says on stderr by whom,
    since when, why and what reopens it.
    SIGINT/SIGTERM: stop receiving, hand back unstarted messages, finish started records
    within the grace period, print the summary, exit 0 (a second Ctrl-C: 130).

    Examples:
      northmigrate worker --until-empty
      northmigrate worker -j 32 --rate 50
      northmigrate worker --log-format json --metrics emf
    """
    if rate is not None and rate <= 0:
        raise InputError("--rate must be a positive number of records per second")
    st = state(ctx)
    settings = st.settings
    workers = concurrency or settings.worker.concurrency
    clients = st.clients(pool_size=workers)
    migration = st.migration
    with (
        metrics_sink(metrics, metrics_file, output, migration.name, st) as sink,
        graceful_stop("finishing the records in flight") as stop,
        progress_line(output, "worker") as update,
    ):

        def on_progress(r: WorkerReport) -> None:
            update(worker_figures(r))

        report = Worker(
            clients,
            settings,
            migration,
            concurrency=workers,
            rate=rate,
            stop=stop,
            grace_period_s=grace,
            on_progress=on_progress,
            emit=fan_out(JsonLines() if log_format is LogFormat.json else None, sink),
            notify=waiting_teller(log_format is LogFormat.json or output is OutputFormat.json),
        ).run(until_empty=until_empty, max_messages=max_messages)
    data = report.to_dict()
    if report.error is not None:
        data["error"] = str(report.error)
    emit(output, data, lambda console: _render(report, console))
    if report.error is not None:
        raise report.error


def register(app: typer.Typer) -> None:
    app.command()(worker)
