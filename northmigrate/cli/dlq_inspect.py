"""``dlq inspect``: depth, oldest age, failure reasons and a sample of the DLQ."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from northmigrate import dlq, records
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
from northmigrate.cli.state import state
from northmigrate.errors import EXIT_INTERRUPTED

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
