"""reconcile: account for every record of the source."""

from __future__ import annotations

import typer
from rich.console import Console

from northmigrate.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    emit,
    key_value_table,
    markup,
    progress_bar,
)
from northmigrate.cli.records import SOURCE_HELP
from northmigrate.cli.state import state
from northmigrate.control.reconcile import ReconcileReport
from northmigrate.control.reconcile import reconcile as reconcile_lib
from northmigrate.dlq.letters import record_reasons
from northmigrate.errors import EXIT_ATTENTION
from northmigrate.sources import open_source


def _render(report: ReconcileReport, console: Console) -> None:
    rows: list[tuple[str, object]] = [
        ("source", report.source),
        ("expected (records read)", report.expected),
        ("migrated (verified in the target)", report.migrated),
        ("rejected (invalid, ineligible, duplicate)", report.rejected),
        ("dead-lettered", report.dead_lettered),
        ("still queued", report.in_queue if report.read_queue else "not read (--read-queue)"),
        ("unsettled (the queues still hold messages)", report.unsettled_total),
        ("missing", report.missing_total),
    ]
    if report.in_flight_unseen:
        rows.append(("in flight elsewhere (unseen)", report.in_flight_unseen))
    console.print(key_value_table("reconcile", rows))
    if report.dead_letter_reasons:
        console.print(
            key_value_table("dead-letter reasons", report.dead_letter_reasons.most_common(10))
        )
    if report.missing:
        shown = ", ".join(report.missing[:20])
        more = f" … and {report.missing_total - 20} more" if report.missing_total > 20 else ""
        console.print(markup("[red]missing: {}{}[/red]", shown, more))
    if report.verify_errors:
        console.print(key_value_table("verify failed", report.verify_errors.most_common(10)))
    if report.stopped_at is not None:
        receives, limit = report.stopped_at
        console.print(
            markup(
                "[yellow]stopped reading the main queue: a message there has had {} of its {} "
                "receives, and reading it again could leave a worker none to try it with (SQS "
                "would move it to the DLQ untried). Run a worker, then reconcile without "
                "--read-queue[/yellow]",
                receives,
                limit,
            )
        )
    elif report.unsettled_total and not report.verify_errors:
        console.print(
            markup(
                "[yellow]{} records are not in the target or the DLQ, and the main queue "
                "holds {} messages: run reconcile again once it has drained, or with "
                "--read-queue to look at each message (a read counts as a receive)[/yellow]",
                report.unsettled_total,
                report.main_depth,
            )
        )
    if report.ok:
        console.print("[green]every record is accounted for[/green]")


def reconcile(
    ctx: typer.Context,
    source: str = typer.Argument(..., help=SOURCE_HELP),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-j",
        min=1,
        max=256,
        help="Verify calls in flight (default: worker.concurrency).",
    ),
    read_queue: bool = typer.Option(
        False,
        "--read-queue",
        help="Also read the main queue to find the records still in it (each message read "
        "counts as one receive against the redrive policy). Uses only the receive headroom: "
        "it stops at a message with queue.max_receive_count receives left or fewer, and "
        "reports its record unsettled.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Account for every record of SOURCE: migrated, rejected, dead-lettered, still queued,
    unsettled, or missing. Exit 1 when any record is missing or unsettled.

    Reads the DLQ without consuming it, then checks each eligible record in the target with
    the plugin's verify (batched where the plugin can). The main queue is read only with
    --read-queue; without it, a record found nowhere while the main queue still holds
    messages is unsettled, not missing. Run it when the workers are done.

    Examples:
      northmigrate reconcile records.jsonl
      northmigrate reconcile dynamodb://onboarding-v1 --output json
    """
    st = state(ctx)
    settings = st.settings
    workers = concurrency or settings.worker.concurrency
    clients = st.clients(pool_size=workers)
    opened = open_source(source, clients=clients)
    total = opened.progress()[1]
    with progress_bar(output, "reconcile", float(total) if total else None) as update:

        def on_progress(r: ReconcileReport) -> None:
            update(
                completed=opened.progress()[0],
                description=f"read {r.expected} migrated {r.migrated} missing {r.missing_total}",
            )

        report = reconcile_lib(
            opened,
            st.migration,
            clients,
            st.queues(),
            dict(settings.migration.options),
            peek=record_reasons,
            max_message_size=settings.queue.max_message_size,
            concurrency=workers,
            progress=on_progress,
            read_queue=read_queue,
            receive_reserve=settings.queue.max_receive_count,
        )
    emit(output, report.to_dict(), lambda console: _render(report, console))
    if not report.ok:
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    app.command()(reconcile)
