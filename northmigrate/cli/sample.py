"""``sample``: realistic fake onboarding records, for the demo, tests and benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from northmigrate.cli.output import say
from northmigrate.errors import InputError
from northmigrate.records import sample as sample_lib


def sample(
    count: int = typer.Option(100, "--count", "-n", min=0, help="How many records."),
    invalid_rate: float = typer.Option(
        0.0, "--invalid-rate", min=0.0, max=1.0, help="Share of invalid records."
    ),
    duplicate_rate: float = typer.Option(
        0.0, "--duplicate-rate", min=0.0, max=1.0, help="Share of repeated records."
    ),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed gives the same file."),
    fmt: sample_lib.Format = typer.Option("jsonl", "--format", help="jsonl, json or csv."),
    out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """Generate realistic fake onboarding records (for the demo, tests and benchmarks).

    About a fifth of the records are ineligible (draft, in review, rejected, withdrawn).

    Examples:
      northmigrate sample -n 300 --invalid-rate 0.05 --out records.jsonl
      northmigrate sample --count 1000 --format csv --out records.csv
    """
    items = sample_lib.generate(
        count, invalid_rate=invalid_rate, duplicate_rate=duplicate_rate, seed=seed
    )
    if out is None:
        sample_lib.write(items, sys.stdout, fmt)
        return
    try:
        with out.open("w", encoding="utf-8") as handle:
            written = sample_lib.write(items, handle, fmt)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    say("wrote {} records to {}", written, out)


def register(app: typer.Typer) -> None:
    app.command()(sample)
