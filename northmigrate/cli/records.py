"""What validate and enqueue share: reading a source into the library's run, the options
that pick and shape a source, and the report's table."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from northmigrate import enqueue as enqueue_lib
from northmigrate.cli.output import (
    OutputFormat,
    emit,
    key_value_table,
    progress_bar,
    shown,
)
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import State
from northmigrate.errors import EXIT_INTERRUPTED
from northmigrate.inflight import MAX_IN_FLIGHT
from northmigrate.rejects import RejectsWriter
from northmigrate.sources import ScanOptions, Source, check_options, open_source
from northmigrate.sources.resume import STATE_DIR

SOURCE_HELP = (
    "A .jsonl/.ndjson, .json (an array) or .csv file, optionally .gz; - for JSONL on stdin; "
    "dynamodb://TABLE; s3://BUCKET/KEY or s3://BUCKET/PREFIX/."
)
REJECTS_OPTION = typer.Option(
    None,
    "--rejects",
    metavar="FILE",
    help="Write each rejected item (original record plus reason) as JSONL (mode 0600).",
)
SEGMENTS_OPTION = typer.Option(
    None,
    "--segments",
    min=1,
    max=1_000_000,
    help="dynamodb:// only: parallel scan segments, 1 to 1000000 (default: 1 per 100 MiB "
    "of table, at most 32); at most 32 are scanned at once, the others wait their turn.",
)
CONSISTENT_OPTION = typer.Option(
    False, "--consistent", help="dynamodb:// only: strongly consistent reads."
)
FILTER_OPTION = typer.Option(
    None,
    "--filter",
    metavar="EXPR",
    help="dynamodb:// only: PATH=VALUE, PATH!=VALUE, or a raw FilterExpression "
    "(#name for attribute name); several must all hold.",
)
FILTER_VALUES_OPTION = typer.Option(
    None,
    "--filter-values",
    metavar="JSON",
    help='dynamodb:// only: values of a raw --filter\'s placeholders, e.g. {":s": "approved"}.',
)


def _scan_flags(
    segments: int | None,
    consistent: bool,
    filters: list[str] | None,
    filter_values: str | None,
    resume: bool = False,
) -> ScanOptions:
    return ScanOptions(
        segments=segments,
        consistent=consistent,
        filters=tuple(filters or ()),
        filter_values=filter_values,
        resume=resume,
    )


def _render(report: enqueue_lib.EnqueueReport, console: Console, title: str) -> None:
    t = report.tally
    rows: list[tuple[str, object]] = [("source", report.source)]
    if not report.validate_only:
        rows.append(("run id", report.run_id))
    rows += [
        ("read", t.read),
        ("valid", t.valid),
        ("eligible", t.eligible),
        ("ineligible (skipped)", t.ineligible),
        ("invalid", t.invalid),
        ("duplicates", t.duplicates),
    ]
    if not report.validate_only:
        label = "would enqueue" if report.dry_run else "enqueued"
        rows += [
            (label, t.eligible if report.dry_run else report.enqueued),
            ("failed", report.failed),
        ]
    rows.append(("rejects file", report.rejects_file))
    rows.append(("seconds", f"{report.duration_s:.2f}"))
    console.print(key_value_table(title, rows))
    if t.errors:
        errors = Table(title=f"rejected ({t.errors_total})", title_justify="left")
        for column in ("line", "record id", "field", "error"):
            errors.add_column(column, overflow="fold")
        for e in t.errors[:20]:
            line = " ".join(str(p) for p in (e.origin, e.line) if p is not None)
            errors.add_row(*map(shown, (line, e.record_id or "", e.field or "", e.error)))
        console.print(errors)
        if t.errors_total > 20:
            console.print(f"… and {t.errors_total - 20} more (see --rejects FILE or --output json)")
    if report.resume_from_line is not None:
        console.print(
            f"[yellow]not everything was sent: run again with --from-line "
            f"{report.resume_from_line} (re-sending is harmless)[/yellow]"
        )


def _run(
    st: State,
    source_name: str,
    output: OutputFormat,
    rejects: Path | None,
    *,
    send: bool,
    dry_run: bool = False,
    limit: int | None = None,
    from_line: int | None = None,
    concurrency: int | None = None,
    flags: ScanOptions,
) -> tuple[enqueue_lib.EnqueueReport, Source]:
    check_options(source_name, flags, from_line=from_line)  # before the config is read
    settings = st.settings
    migration = st.migration
    options = replace(flags, sensitive=migration.sensitive)
    if send:  # a table scan records its progress (a dry run reads a state, writes none)
        options = replace(
            options, state_dir=STATE_DIR, queue_name=settings.queue.name, save_state=not dry_run
        )
    sqs = queue_url = None
    max_size = settings.queue.max_message_size
    if send:
        clients = st.clients(pool_size=concurrency or MAX_IN_FLIGHT)
        queues = st.queues()
        queue_url = queues.main_url()
        max_size = queues.max_message_size(queue_url)
        sqs = clients.client("sqs")
    with ExitStack() as stack:
        # Before the source opens: a signal stops even a read that never ends.
        stop = stack.enter_context(graceful_stop("finishing the batches in flight"))
        source = open_source(source_name, clients=st.clients(), stop=stop, options=options)
        writer = stack.enter_context(RejectsWriter(rejects)) if rejects else None
        total = source.progress()[1]
        update = stack.enter_context(
            progress_bar(output, "enqueue" if send else "validate", float(total) if total else None)
        )

        def on_progress(r: enqueue_lib.EnqueueReport) -> None:
            t = r.tally
            sent = f" sent {r.enqueued}" if send else ""
            update(
                completed=r.source_done,
                total=r.source_total,
                description=f"read {t.read} valid {t.valid}{sent} rejected {t.errors_total}",
            )

        report = enqueue_lib.run(
            source,
            migration,
            max_message_size=max_size,
            sqs=sqs,
            queue_url=queue_url,
            fifo=settings.queue.fifo,
            dry_run=dry_run,
            limit=limit,
            from_line=from_line,
            concurrency=concurrency or MAX_IN_FLIGHT,
            rejects=writer,
            progress=on_progress,
            stop=stop,
        )
        return report, source


def _scan_info(source: Source) -> dict[str, Any]:
    info = source.resume_info()
    return {"scan": info} if info is not None else {}


def _finish(
    report: enqueue_lib.EnqueueReport,
    output: OutputFormat,
    title: str,
    extra: dict[str, Any] | None = None,
) -> None:
    data = report.to_dict() | (extra or {})
    if report.error is not None:
        data["error"] = str(report.error)
    emit(output, data, lambda console: _render(report, console, title))
    if report.error is not None:
        raise report.error
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
