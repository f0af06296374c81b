"""``northmigrate enqueue``: validate a source and send each eligible record."""

from __future__ import annotations

from pathlib import Path

import typer

from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, say
from northmigrate.cli.records import (
    CONSISTENT_OPTION,
    FILTER_OPTION,
    FILTER_VALUES_OPTION,
    REJECTS_OPTION,
    SEGMENTS_OPTION,
    SOURCE_HELP,
    _finish,
    _run,
    _scan_flags,
    _scan_info,
)
from northmigrate.cli.state import state
from northmigrate.envelope import iso, utc_now
from northmigrate.errors import EXIT_ATTENTION
from northmigrate.status import LastRun, write_last_run


def enqueue(
    ctx: typer.Context,
    source: str = typer.Argument(..., help=SOURCE_HELP),
    rejects: Path | None = REJECTS_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count; send nothing."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Send at most N eligible records, then stop."
    ),
    from_line: int | None = typer.Option(
        None,
        "--from-line",
        min=1,
        help="Skip the source's lines before N (resume an interrupted run).",
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        max=256,
        help="At most N batches in flight; how many adapts to the endpoint (default 64).",
    ),
    segments: int | None = SEGMENTS_OPTION,
    consistent: bool = CONSISTENT_OPTION,
    filters: list[str] | None = FILTER_OPTION,
    filter_values: str | None = FILTER_VALUES_OPTION,
    resume: bool = typer.Option(
        False,
        "--resume",
        help="dynamodb:// only: continue the scan where the last enqueue of this table to "
        "this queue stopped (state in ./.northmigrate/resume/).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Validate every record and send each eligible one to the main queue as one message.

    Messages go out with SendMessageBatch (10 entries or the size limit), several batches at
    once; a record counts as enqueued only once SQS confirmed it. Safe to run again: a
    repeated record is a repeated message, and the worker's writes are idempotent. Exit 1 when
    some records could not be sent (they are in the rejects file), 3 when AWS is unreachable.
    """
    report, opened = _run(
        state(ctx),
        source,
        output,
        rejects,
        send=True,
        dry_run=dry_run,
        limit=limit,
        from_line=from_line,
        concurrency=concurrency,
        flags=_scan_flags(segments, consistent, filters, filter_values, resume),
    )
    info = _scan_info(opened)
    if not dry_run and report.enqueued:
        # status reads it to show how much of this run is done
        write_last_run(LastRun(report.run_id, report.enqueued, iso(utc_now())))
    if info and not dry_run and not report.complete:
        say("[yellow]the scan did not finish: run again with --resume to continue[/yellow]")
    _finish(report, output, "enqueue (dry run)" if dry_run else "enqueue", info)
    if report.failed:
        say(f"[red]{report.failed} records were not sent; see the rejects and run again[/red]")
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
