"""The ``dlq`` commands: inspect, redrive, watch."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from northmigrate import dlq, records
from northmigrate.aws.clients import error_code
from northmigrate.aws.inflight import MAX_IN_FLIGHT
from northmigrate.aws.sqs.queue import depth
from northmigrate.cli import canary as canary_cli
from northmigrate.cli.dlq_watch import watch
from northmigrate.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    age_text,
    emit,
    key_value_table,
    plain,
    progress_bar,
    say,
    shown,
)
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import State, state
from northmigrate.dlq.canary import CANARY_WAIT_S
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


# -- inspect -------------------------------------------------------------------------------

# SQS's receive count: every receive, inspect's own reads (this one too) included.
RECEIVES = "receives*"
RECEIVES_NOTE = "* receives: SQS's count, inspect's own reads included (this one too)"


def _render_inspect(report: dlq.InspectReport, console: Console, long: bool = False) -> None:
    rows: list[tuple[str, object]] = [
        ("queue", report.queue),
        ("visible", report.depth.visible),
        ("in flight", report.depth.in_flight),
        ("delayed", report.depth.delayed),
        ("oldest", age_text(report.oldest_age_s)),
        ("scanned", report.scanned),
        ("complete", "yes" if report.complete else f"no ({report.ended})"),
    ]
    if report.export_file:
        rows.append(("exported", f"{report.exported} to {report.export_file}"))
    console.print(key_value_table("dead-letter queue", rows))
    if report.reasons:
        reasons = Table(title="reasons", title_justify="left")
        reasons.add_column("count", justify="right")
        reasons.add_column("reason", overflow="fold")
        for reason, count in report.reasons.most_common():
            reasons.add_row(str(count), shown(reason))
        console.print(reasons)
    if not report.messages:
        return
    title = f"sample ({len(report.messages)} of {report.scanned})"
    if long:
        console.print(shown(title, "italic"))
        for m in report.messages:
            _print_letter(console, m)
        return
    sample = Table(title=title, title_justify="left")
    # A message id is read whole or not at all: never folded (36 characters); the record id
    # goes under it, which leaves the reason room to be read at 80 columns.
    sample.add_column("message id / record id", no_wrap=True, min_width=36)
    sample.add_column(RECEIVES, justify="right")
    sample.add_column("reason", overflow="fold")
    for m in report.messages:
        ids = Text(plain(m["message_id"]))
        ids.append("\n" + plain(m["record_id"] or "(no record id)"), style="dim")
        sample.add_row(ids, str(m["receive_count"]), shown(m["reason"]))
    console.print(sample)
    console.print(RECEIVES_NOTE, highlight=False)
    console.print(
        "bodies: --long · more samples: --limit N · every message: --export FILE",
        highlight=False,
    )


def _print_letter(console: Console, m: dict[str, Any]) -> None:
    """One dead letter in full: its ids and reason, then its body, indented JSON, on lines
    of its own (sensitive fields already masked)."""
    head = f"{m['message_id']}  record {m['record_id'] or '?'}"
    console.print()
    console.print(shown(head, "bold"))
    console.print(f"receives {m['receive_count']} (inspect's reads included)", highlight=False)
    console.print(shown(f"reason: {m['reason']}"))
    body = m["body"]
    text = body if isinstance(body, str) else records.pretty(body)  # numbers exact
    console.print(Text(plain(text, newlines=True)), highlight=False)


def inspect(
    ctx: typer.Context,
    limit: int = typer.Option(3, "--limit", "-n", min=0, help="Messages in the sample."),
    long: bool = typer.Option(
        False, "--long", help="Show each sampled message's body in full (sensitive fields masked)."
    ),
    export: Path | None = typer.Option(
        None,
        "--export",
        metavar="FILE",
        help="Write every message read (body and attributes) as JSONL, mode 0600.",
    ),
    show_pii: bool = typer.Option(
        False, "--show-pii", help="Show the fields the plugin marks sensitive (off: ***)."
    ),
    scan: int | None = typer.Option(
        None,
        "--scan",
        min=1,
        help="Read at most N messages (default: the whole queue, up to the in-flight limit).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Depth, oldest age, failure reasons and a sample of the DLQ; removes nothing.

    SQS has no peek: every message read is hidden while the read lasts (its receive count
    goes up by one) and made visible again at once when it ends, also when it is interrupted.
    Reasons are counted over the messages read; "unknown" marks messages SQS moved itself.
    Sensitive fields are masked in every output unless --show-pii.

    Examples:
      northmigrate dlq inspect
      northmigrate dlq inspect -n 50 --export letters.jsonl
    """
    st = state(ctx)
    sensitive = () if show_pii else st.migration.sensitive
    queues = st.queues()
    url = queues.dlq_url()
    with ExitStack() as stack:
        writer = stack.enter_context(dlq.ExportWriter(export)) if export else None
        stop = stack.enter_context(graceful_stop("making the messages read visible again"))
        update = stack.enter_context(progress_bar(output, "inspect", None))
        report = dlq.inspect(
            queues.sqs,
            url,
            sensitive=sensitive,
            show_pii=show_pii,
            limit=limit,
            scan=scan,
            export=writer,
            stop=stop,
            progress=lambda r: update(completed=r.scanned, description=f"read {r.scanned}"),
        )
    emit(output, report.to_dict(), lambda console: _render_inspect(report, console, long))
    if report.hidden_note:
        say("[yellow]{}[/yellow]", report.hidden_note)
    if report.ended == "in_flight_limit":
        say(
            "[yellow]stopped at the in-flight limit: the counts cover the messages read "
            "(see --export for a file of them)[/yellow]"
        )
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


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

    Examples:
      northmigrate dlq redrive --where "error_kind=outage" --dry-run
      northmigrate dlq redrive --where "reason~ValueError" --canary 5
      northmigrate dlq redrive --to onboarding-retry -n 100 --rate 10
    """
    if rate is not None and rate <= 0:
        raise InputError("--rate must be a positive number of messages per second")
    conditions = dlq.parse_all(where)
    if native and (conditions or max_messages is not None or dry_run or canary):
        raise InputError(
            "--native moves everything: it cannot take --where, --max, --dry-run or --canary"
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

        if native:
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
    if report.failed or report.in_flight:
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    dlq_app.command()(inspect)
    dlq_app.command()(redrive)
    dlq_app.command()(watch)
    app.add_typer(dlq_app, name="dlq")
