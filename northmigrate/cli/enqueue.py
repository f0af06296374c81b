"""``northmigrate enqueue``: validate a source and send each eligible record."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from northmigrate.cli.fanout import FAN_OUT_HELP, RESUME_HELP, check_flags, run_fan_out
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat
from northmigrate.cli.records import (
    CONSISTENT_OPTION,
    FILTER_OPTION,
    FILTER_VALUES_OPTION,
    FORCE_OPTION,
    LISTING_OPTION,
    REJECTS_OPTION,
    SEGMENTS_OPTION,
    SHARD_OPTION,
    SHARDS_OPTION,
    SOURCE_HELP,
    _finish,
    _run,
    _scan_flags,
    _scan_info,
    _shard,
)
from northmigrate.cli.state import State, state
from northmigrate.enqueue.job import EnqueueReport
from northmigrate.errors import EXIT_ATTENTION
from northmigrate.sources import check_options
from northmigrate.sources.shard import Shard


def continue_command(
    st: State,
    source: str,
    line: int,
    rejects: Path | None,
    concurrency: int | None,
    shard: Shard | None = None,
    key: str | None = None,
    listing: str | None = None,
) -> str:
    """The command that goes on where this run stopped, to copy as it is."""
    words = ["northmigrate"]
    if st.config_path:
        words += ["--config", st.config_path]
    words += ["enqueue", source]
    if key is not None:
        words += ["--from-object", key]
    words += ["--from-line", str(line)]
    if shard is not None:
        words += ["--shard", str(shard)]
    if listing is not None:  # an S3 source: the rest is read only from the same objects
        words += ["--listing", listing]
    if rejects is not None:
        words += ["--rejects", str(rejects)]
    if concurrency is not None:
        words += ["--concurrency", str(concurrency)]
    return shlex.join(words)


def _notes(report: EnqueueReport, limit: int | None, command: str | None) -> list[tuple[str, ...]]:
    """What to do next, one line each: why the run stopped and the command that continues."""
    if command is None:
        return []
    go_on = "continue with:\n  {}"  # the command on a line of its own, to copy
    if report.failed:
        reasons = {e.error for e in report.tally.errors if e.field is None and e.record_id}
        why = f" ({next(iter(reasons)).removeprefix('not sent: ')})" if len(reasons) == 1 else ""
        return [(f"[red]{report.failed} records were not sent{{}}; {go_on}[/red]", why, command)]
    if report.interrupted:
        return [(f"[yellow]interrupted; {go_on}[/yellow]", command)]
    if report.error is not None:
        return [(f"[yellow]stopped early; {go_on}[/yellow]", command)]
    if limit is not None:
        return [(f"[yellow]stopped after {limit} (--limit); {go_on}[/yellow]", command)]
    return [(f"[yellow]not everything was sent; {go_on}[/yellow]", command)]


def enqueue(
    ctx: typer.Context,
    source: str = typer.Argument(..., help=SOURCE_HELP),
    rejects: Path | None = REJECTS_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count; send nothing."),
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Send at most N eligible records, then stop."
    ),
    from_line: int | None = typer.Option(
        None,
        "--from-line",
        min=1,
        help="Skip the source's lines before N (resume an interrupted run).",
    ),
    from_object: str | None = typer.Option(
        None,
        "--from-object",
        metavar="KEY",
        help="s3://BUCKET/PREFIX/ only: skip the objects before KEY, and in KEY the lines "
        "before --from-line (resume an interrupted run).",
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-j",
        min=1,
        max=256,
        help="At most N batches in flight; how many adapts to the endpoint (default 64).",
    ),
    segments: int | None = SEGMENTS_OPTION,
    consistent: bool = CONSISTENT_OPTION,
    filters: list[str] | None = FILTER_OPTION,
    filter_values: str | None = FILTER_VALUES_OPTION,
    force: bool = FORCE_OPTION,
    shard_text: str | None = SHARD_OPTION,
    shards: int | None = SHARDS_OPTION,
    listing: str | None = LISTING_OPTION,
    fan_out: str | None = typer.Option(None, "--fan-out", metavar="N|auto", help=FAN_OUT_HELP),
    resume_fan_out: str | None = typer.Option(
        None, "--resume-fan-out", metavar="RUN", help=RESUME_HELP
    ),
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

    Examples:
      northmigrate enqueue records.jsonl -n 5  # a canary of five
      northmigrate enqueue s3://old-exports/onboarding/ --shard auto  # on AWS Batch
      northmigrate enqueue s3://old-exports/onboarding/ --fan-out auto  # Step Functions
    """
    if fan_out is not None or resume_fan_out is not None:
        given = {
            "--fan-out (the run keeps its shard count)": resume_fan_out is not None
            and fan_out is not None,
            "--shard": shard_text is not None or shards is not None,
            "--from-line": from_line is not None,
            "--from-object": from_object is not None,
            "--dry-run": dry_run,
            "--limit": limit is not None,
            "--rejects (the shards write theirs to the fan-out bucket)": rejects is not None,
            "--concurrency": concurrency is not None,
            "--resume": resume,
            "--listing (the run keeps its own)": listing is not None,
        }
        by = "--fan-out" if resume_fan_out is None else "--resume-fan-out"
        check_flags(source, given, by)
        check_options(source, _scan_flags(segments, consistent, filters, filter_values))
        run_fan_out(state(ctx), source, fan_out, output, resume_fan_out)
        return
    shard = _shard(shard_text, shards)
    st = state(ctx)
    report, opened = _run(
        st,
        source,
        output,
        rejects,
        send=True,
        dry_run=dry_run,
        limit=limit,
        from_line=from_line,
        from_object=from_object,
        concurrency=concurrency,
        flags=_scan_flags(segments, consistent, filters, filter_values, resume),
        force=force,
        shard=shard,
        listing=listing,
    )
    info = _scan_info(opened)
    line = report.resume_from_line
    command = None
    if line is not None and not dry_run and source != "-" and not info:
        key = report.resume_from_object
        command = continue_command(
            st, source, line, rejects, concurrency, shard, key, report.listing
        )
    notes = _notes(report, limit, command)
    if info and not dry_run and not report.complete:
        notes.append(
            (
                "[yellow]the scan did not finish: run again with --resume{} to continue[/yellow]",
                "" if shard is None else f" --shard {shard}",
            )
        )
    extra = info | ({} if dry_run else {"resume_command": command})
    title = "enqueue (dry run)" if dry_run else "enqueue"
    _finish(report, output, title, extra, notes, from_line=from_line)
    if report.failed:
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
