"""What validate and enqueue share: reading a source into the library's run, the options
that pick and shape a source, and the report's table."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from northmigrate import enqueue as enqueue_lib
from northmigrate.aws.inflight import MAX_IN_FLIGHT
from northmigrate.cli.output import OutputFormat, emit, key_value_table, say, shown
from northmigrate.cli.progress import enqueue_figures, progress_line, ticking
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import State
from northmigrate.control.status import RunRecorder
from northmigrate.errors import EXIT_INTERRUPTED, InputError
from northmigrate.records.envelope import iso, utc_now
from northmigrate.records.rejects import RejectsWriter
from northmigrate.records.validation import Rejection
from northmigrate.sources import ScanOptions, Source, check_options, open_source
from northmigrate.sources.resume import STATE_DIR
from northmigrate.sources.s3 import listing_of
from northmigrate.sources.shard import Shard, parse_shard

SOURCE_HELP = (
    "A .jsonl/.ndjson, .json (an array) or .csv file, optionally .gz; - for JSONL on stdin; "
    "dynamodb://TABLE; s3://BUCKET/KEY or s3://BUCKET/PREFIX/."
)
REJECTS_OPTION = typer.Option(
    None,
    "--rejects",
    metavar="FILE",
    help="Write each rejected item (original record plus reason) as JSONL (mode 0600). A "
    "resumed run (--from-line, --resume) adds to it; a file that is not empty is otherwise "
    "never overwritten without --force.",
)
FORCE_OPTION = typer.Option(
    False, "--force", help="Overwrite a --rejects file that holds an earlier run's rejects."
)
SEGMENTS_OPTION = typer.Option(
    None,
    "--segments",
    min=1,
    max=1_000_000,
    help="dynamodb:// only: parallel scan segments, 1 to 1000000 (default: 1 per 100 MiB "
    "of table, at most 32); more than the table can use (1 per item and per MiB, at least "
    "32) is lowered to that; at most 32 are scanned at once, the others wait their turn.",
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


SHARD_OPTION = typer.Option(
    None,
    "--shard",
    metavar="I/N|auto",
    help="Read only part I of N (0-based); N processes, each with its own I, read the source "
    "once between them. auto: from AWS_BATCH_JOB_ARRAY_INDEX and _SIZE, JOB_COMPLETION_INDEX "
    "(with --shards N) or CLOUD_RUN_TASK_INDEX/_COUNT. Not for stdin.",
)
LISTING_OPTION = typer.Option(
    None,
    "--listing",
    metavar="DIGEST",
    help="s3:// only: exit 2 unless the source's objects are those of this digest (the JSON "
    "summary's listing): shards started apart cut the same objects.",
)
SHARDS_OPTION = typer.Option(
    None, "--shards", min=1, metavar="N", help="The shard count, for --shard auto on Kubernetes."
)


def _shard(text: str | None, shards: int | None) -> Shard | None:
    """The shard of ``--shard``/``--shards`` (exit 2 when it is not one)."""
    if text is None:
        if shards is not None:
            raise InputError("--shards applies with --shard auto", hint="--shard auto --shards N")
        return None
    return parse_shard(text, shards=shards, env=os.environ)


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
        groups = _grouped(t.errors)
        # A field path is read whole (up to 30 characters, then cut with an ellipsis: the
        # JSON output has it all); the error takes the rest and wraps.
        errors.add_column("line", overflow="fold")
        errors.add_column("record id", overflow="fold")
        errors.add_column("field", no_wrap=True, max_width=30)
        errors.add_column("error", overflow="fold")
        for group in groups[:20]:
            errors.add_row(*map(shown, _group_row(group)))
        console.print(errors)
        shown_count = sum(len(group) for group in groups[:20])
        if t.errors_total > shown_count:
            console.print(
                f"… and {t.errors_total - shown_count} more (see --rejects FILE or --output json)"
            )


def _grouped(errors: list[Rejection]) -> list[list[Rejection]]:
    """Rejections with the same field and reason together (an endpoint that went away fails
    every record in flight the same way: one row, not twenty), in order of first line."""
    groups: dict[tuple[str | None, str], list[Rejection]] = {}
    for e in errors:
        groups.setdefault((e.field, e.error), []).append(e)
    return list(groups.values())


def _group_row(group: list[Rejection]) -> tuple[str, str, str, str]:
    def where(e: Rejection) -> str:
        return " ".join(str(p) for p in (e.origin, e.line) if p is not None)

    first = group[0]
    # The field has a column of its own: the error need not say it again.
    error = first.error.removeprefix(f"{first.field}: ") if first.field else first.error
    if len(group) == 1:
        return where(first), first.record_id or "", first.field or "", error
    lines = ", ".join(where(e) for e in group[:3]) + (
        f" +{len(group) - 3}" if len(group) > 3 else ""
    )
    return lines, f"{len(group)} records", first.field or "", error


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
    from_object: str | None = None,
    concurrency: int | None = None,
    flags: ScanOptions,
    force: bool = False,
    shard: Shard | None = None,
    listing: str | None = None,
) -> tuple[enqueue_lib.EnqueueReport, Source]:
    # before the config is read
    check_options(
        source_name,
        flags,
        from_line=from_line,
        from_object=from_object,
        sharded=shard is not None,
        listing=listing,
    )
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
        resumed = from_line is not None or from_object is not None or flags.resume
        source = open_source(
            source_name,
            clients=st.clients(),
            stop=stop,
            options=options,
            shard=shard,
            from_object=from_object,
            listing=listing,
        )
        notice = getattr(source, "notice", None)
        if notice:  # e.g. --segments lowered to what the table can use
            say("[yellow]{}[/yellow]", notice)
        # an earlier run's rejects are added to when resuming, else kept unless --force
        file_identity = getattr(source, "file_identity", None)  # a file's, sharded or not
        identity = file_identity() if callable(file_identity) else None
        writer = (
            stack.enter_context(
                RejectsWriter(
                    rejects, append=resumed, force=force, source=identity, source_name=source.name
                )
            )
            if rejects
            else None
        )
        update = stack.enter_context(progress_line(output, "enqueue" if send else "validate"))
        run_id = enqueue_lib.new_run_id()
        recorder = None
        if send and not dry_run:  # status follows the run while it sends
            recorder = RunRecorder(
                run_id,
                source.name,
                settings.queue.name,
                continues=resumed,
                now=lambda: iso(utc_now()),
            )
        seen: list[enqueue_lib.EnqueueReport] = []
        sending = send and not dry_run

        def on_progress(r: enqueue_lib.EnqueueReport) -> None:
            seen[:] = [r]
            update(enqueue_figures(r, sending=sending))

        def tick() -> None:  # the sender confirms records after the read has ended
            if seen:
                update(enqueue_figures(seen[0], sending=sending))
                if recorder is not None:
                    recorder.update(seen[0].enqueued)

        stack.enter_context(ticking(0.5, tick))
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
            from_object=from_object,
            concurrency=concurrency or MAX_IN_FLIGHT,
            rejects=writer,
            progress=on_progress,
            stop=stop,
            run_id=run_id,
        )
        report.shard = None if shard is None else str(shard)
        report.listing = listing_of(source)
        seen[:] = [report]
        if recorder is not None:
            recorder.update(report.enqueued)
        return report, source


def _scan_info(source: Source) -> dict[str, Any]:
    info = source.resume_info()
    return {"scan": info} if info is not None else {}


def _finish(
    report: enqueue_lib.EnqueueReport,
    output: OutputFormat,
    title: str,
    extra: dict[str, Any] | None = None,
    notes: list[tuple[str, ...]] | None = None,
    from_line: int | None = None,
) -> None:
    """The report on stdout, then ``notes`` (``say``'s arguments) and the warnings on stderr;
    raises the run's error, or exits 130 when it was interrupted."""
    data = report.to_dict() | (extra or {})
    if report.error is not None:
        data["error"] = str(report.error)
    emit(output, data, lambda console: _render(report, console, title))
    if report.tally.read == 0 and report.error is None and not report.interrupted:
        where = "" if from_line is None else f" at or after line {from_line}"
        say(
            f"[yellow]Warning: {{}} holds no records{where}: nothing was read[/yellow]",
            report.source,
        )
    for line in notes or ():
        say(*line)
    if report.error is not None:
        raise report.error
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
