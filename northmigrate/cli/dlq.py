"""The ``dlq`` commands: inspect, redrive, watch."""

from __future__ import annotations

from contextlib import ExitStack

import typer
from rich.console import Console

from northmigrate import dlq
from northmigrate.aws.clients import error_code
from northmigrate.aws.inflight import MAX_IN_FLIGHT
from northmigrate.aws.sqs.queue import depth
from northmigrate.cli import canary as canary_cli
from northmigrate.cli.dlq_inspect import _render_inspect as _render_inspect  # where it was
from northmigrate.cli.dlq_inspect import inspect
from northmigrate.cli.dlq_watch import watch
from northmigrate.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    emit,
    key_value_table,
    progress_bar,
    say,
)
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import State, state
from northmigrate.dlq.canary import CANARY_WAIT_S
from northmigrate.dlq.processes import MAX_PROCESSES, Job, SqsFactory, redrive_processes
from northmigrate.dlq.redrive import MODE_NATIVE, REDRIVE_VISIBILITY_S
from northmigrate.errors import EXIT_ATTENTION, EXIT_INTERRUPTED, AwsError, InputError

MISSING_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")

dlq_app = typer.Typer(
    name="dlq",
    help="The dead-letter queue: inspect it (removing nothing), redrive it, watch it."
    "\n\nExamples:\n"
    "  northmigrate dlq inspect\n"
    "  northmigrate dlq redrive --dry-run\n"
    "  northmigrate dlq watch --once --threshold 1",
    no_args_is_help=True,
)


# -- redrive -------------------------------------------------------------------------------


def _render_redrive(report: dlq.RedriveReport, console: Console) -> None:
    title = "redrive (dry run)" if report.dry_run else f"redrive ({report.mode})"
    rows: list[tuple[str, object]] = [
        ("from", report.source),
        ("to", report.destination),
        ("matched", report.matched),
        (
            "would move" if report.dry_run else "moved",
            report.matched if report.dry_run else report.moved,
        ),
        ("skipped (no match)", report.skipped),
        ("failed (still in DLQ)", report.failed),
    ]
    if report.delete_failed:
        rows.append(("in both queues", report.delete_failed))
    if report.task_status:
        rows.append(("task status", report.task_status))
    if report.processes:
        died = f" ({len(report.died)} died)" if report.died else ""
        rows.append(("processes", f"{len(report.processes)}{died}"))
    rows.append(("seconds", f"{report.duration_s:.2f}"))
    console.print(key_value_table(title, rows))
    if report.failure_reasons:
        console.print(key_value_table("send failures", list(report.failure_reasons.most_common())))


def _destination(st: State, to: str | None) -> str:
    queues = st.queues()
    if to is None:
        return dlq.default_destination(queues.sqs, queues.dlq_url(), queues.main_url())
    if to.startswith(("https://", "http://")):
        return to
    try:
        return queues.url(to)
    except AwsError as exc:
        if exc.__cause__ is None or error_code(exc.__cause__) not in MISSING_QUEUE_CODES:
            raise
        # provision creates the configured queues only: it would not create this one
        raise AwsError(
            f"--to {to}: the queue does not exist",
            hint="name an existing queue or its URL, or leave --to out to redrive to "
            f"the main queue ({queues.main_name})",
        ) from exc


def redrive(
    ctx: typer.Context,
    to: str | None = typer.Option(
        None, "--to", metavar="QUEUE", help="Destination queue name or URL (default: main)."
    ),
    max_messages: int | None = typer.Option(
        None, "--max", "-n", min=1, help="Move at most N messages."
    ),
    rate: float | None = typer.Option(None, "--rate", help="At most R messages per second."),
    where: list[str] = typer.Option(
        [],
        "--where",
        metavar="EXPR",
        help="Only messages where EXPR holds: reason~REGEX, record_id=X, record.a.b=V, "
        "kind=permanent, error_kind=outage; also != and !~. Repeatable: all must hold.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count what would move; move nothing, leave all visible."
    ),
    native: bool = typer.Option(
        False,
        "--native",
        help="Use SQS's StartMessageMoveTask (real AWS; no --where/--max/--dry-run).",
    ),
    concurrency: int = typer.Option(
        MAX_IN_FLIGHT,
        "--concurrency",
        "-j",
        min=1,
        max=256,
        help="At most N chunks of 10 in flight; how many adapts to the endpoint.",
    ),
    visibility_timeout: int = typer.Option(
        REDRIVE_VISIBILITY_S,
        "--visibility-timeout",
        min=1,
        max=43_200,
        help="Seconds a message read stays hidden should this process die before giving "
        "it back (messages not moved are given back at once when it ends).",
    ),
    canary: int | None = typer.Option(
        None,
        "--canary",
        min=1,
        max=1000,
        help="Move N matching messages first and wait until each is migrated (the "
        "plugin's verify) or back in the DLQ; move the rest only when all migrated.",
    ),
    canary_wait: float = typer.Option(
        CANARY_WAIT_S,
        "--canary-wait",
        min=1,
        max=3600,
        help="Seconds to wait at most for the canary's verdict.",
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        max=MAX_PROCESSES,
        help="Run N redrives on this machine, --max taken from together and --rate divided "
        "among them, reported as one (one per core: one process's CPU is its limit).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Move dead letters back to the main queue (or --to another), losing none.

    Each message is sent to the destination, and deleted from the DLQ only once the
    destination confirmed it: a crash leaves it in one queue or both, never in neither.
    Messages not moved are visible again when the command ends. Exit 1 when some messages
    could not be moved (they stay in the DLQ), or when some dead letters were in flight
    (hidden by another reader or a stopped run) and not seen: the output says when they
    come back.

    With --canary N: exit 1 when a canary came back to the DLQ or was not migrated within
    --canary-wait; then nothing more is moved. While it waits it says so on stderr (a JSON
    line with --output json), and warns at once when nothing reads the main queue (no worker
    seen in 3 minutes, no enabled event source mapping, or a closed tap).

    With --processes N: N processes each run the same redrive, taking from one --max
    together (a faster one moves more; together never more than --max) with R/N of
    --rate; one total is reported, with each process's counts in the JSON output. A
    process that dies is named, and the run exits 1: what it held comes back to the DLQ
    after --visibility-timeout, and running the command again moves it.

    Examples:
      northmigrate dlq redrive --where "error_kind=outage" --dry-run
      northmigrate dlq redrive --where "reason~ValueError" --canary 5
      northmigrate dlq redrive --to retry -n 100 --rate 10 --processes 2
    """
    if rate is not None and rate <= 0:
        raise InputError("--rate must be a positive number of messages per second")
    conditions = dlq.parse_all(where)
    if native and (conditions or max_messages is not None or dry_run or canary):
        raise InputError(
            "--native moves everything: it cannot take --where, --max, --dry-run or --canary"
        )
    if processes > 1 and (native or canary is not None):
        raise InputError(
            "--processes runs client-side redrives: it cannot take --native or --canary",
            hint="run the canary first (dlq redrive --canary N), then --processes N",
        )
    st = state(ctx)
    clients = st.clients(pool_size=concurrency + 8)
    queues = st.queues()
    source = queues.dlq_url()
    destination = _destination(st, to)
    sqs = clients.client("sqs")
    if canary is not None:
        kwargs = {
            "conditions": conditions,
            "rate": rate,
            "concurrency": concurrency,
            "max_message_size": queues.max_message_size(destination),
            "visibility_timeout": visibility_timeout,
        }
        if dry_run:
            canary_cli.plan(
                st, source, destination, canary, canary_wait, kwargs, max_messages, output
            )
            return
        with graceful_stop("finishing the canary's chunks") as stop:
            canary_cli.run(
                st, source, destination, canary, canary_wait, kwargs, max_messages, stop, output
            )
        return
    with ExitStack() as stack:
        stop = stack.enter_context(graceful_stop("finishing the chunks in flight"))
        total = float(depth(sqs, source).visible) or None
        update = stack.enter_context(progress_bar(output, "redrive", total))

        def on_progress(r: dlq.RedriveReport) -> None:
            line = f"moved {r.moved} skipped {r.skipped} failed {r.failed}"
            if r.dry_run:
                line = f"would move {r.matched} skipped {r.skipped}"
            if r.mode == MODE_NATIVE:
                update(completed=r.moved, total=float(r.matched) or None, description=line)
            else:
                update(completed=r.read, description=line)

        if processes > 1:
            job = Job(
                SqsFactory(st.settings.aws, st.settings.aws_origins, concurrency + 8),
                source,
                destination,
                conditions=tuple(conditions),
                max_messages=max_messages,
                rate=rate,
                dry_run=dry_run,
                concurrency=concurrency,
                max_message_size=queues.max_message_size(destination),
                visibility_timeout=visibility_timeout,
            )
            report = redrive_processes(sqs, job, processes, stop=stop, progress=on_progress)
        elif native:
            report = dlq.native_redrive(
                sqs, source, destination, rate=rate, stop=stop, progress=on_progress
            )
        else:
            report = dlq.redrive(
                sqs,
                source,
                destination,
                conditions=conditions,
                max_messages=max_messages,
                rate=rate,
                dry_run=dry_run,
                concurrency=concurrency,
                stop=stop,
                progress=on_progress,
                max_message_size=queues.max_message_size(destination),
                visibility_timeout=visibility_timeout,
            )
    data = report.to_dict()
    if report.error is not None:
        data["error"] = str(report.error)
    emit(output, data, lambda console: _render_redrive(report, console))
    if report.error is not None:
        raise report.error
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.hidden_note:
        say("[yellow]{}[/yellow]", report.hidden_note)
    if report.failed:
        say(f"[red]{report.failed} messages could not be moved; they stay in the DLQ[/red]")
    for gone in report.died:
        say(
            f"[red]redrive process {gone['index']} ended without a report (exit "
            f"{gone['exit_code']}{', ' + gone['signal'] if gone['signal'] else ''}): what it "
            f"held is back in the DLQ within {visibility_timeout}s; run the command again to "
            "move it[/red]"
        )
    if report.failed or report.in_flight or report.died:
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    dlq_app.command()(inspect)
    dlq_app.command()(redrive)
    dlq_app.command()(watch)
    app.add_typer(dlq_app, name="dlq")
