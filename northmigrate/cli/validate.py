"""``northmigrate validate``: read and validate a source; send nothing."""

from __future__ import annotations

from pathlib import Path

import typer

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
    _shard,
)
from northmigrate.cli.state import state
from northmigrate.errors import EXIT_ATTENTION


def validate(
    ctx: typer.Context,
    source: str = typer.Argument(..., help=SOURCE_HELP),
    rejects: Path | None = REJECTS_OPTION,
    strict: bool = typer.Option(
        False, "--strict", help="Exit 1 when any record is invalid or a duplicate."
    ),
    force: bool = FORCE_OPTION,
    segments: int | None = SEGMENTS_OPTION,
    consistent: bool = CONSISTENT_OPTION,
    filters: list[str] | None = FILTER_OPTION,
    filter_values: str | None = FILTER_VALUES_OPTION,
    shard_text: str | None = SHARD_OPTION,
    shards: int | None = SHARDS_OPTION,
    listing: str | None = LISTING_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Read and validate every record against the migration's model; send nothing.

    Each bad line is reported with its line number, record id, field and reason; ineligible
    records are counted. read = valid + invalid + duplicates; valid = eligible + ineligible.

    Examples:
      northmigrate validate records.jsonl --rejects rejects.jsonl
      northmigrate validate s3://old-exports/onboarding/ --output json
      northmigrate validate records.jsonl --shard 0/4  # the first of four parts
    """
    shard = _shard(shard_text, shards)
    flags = _scan_flags(segments, consistent, filters, filter_values)
    report, _ = _run(
        state(ctx),
        source,
        output,
        rejects,
        send=False,
        flags=flags,
        force=force,
        shard=shard,
        listing=listing,
    )
    _finish(report, output, "validate")
    if strict and (report.tally.invalid or report.tally.duplicates):
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    app.command()(validate)
