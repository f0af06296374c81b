"""Rendering: a rich table on stdout, or exactly one JSON object; everything else on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OUTPUT_OPTION = typer.Option(
    OutputFormat.table,
    "--output",
    "-o",
    envvar="NORTHMIGRATE_OUTPUT",
    case_sensitive=False,
    help="table for people, json for scripts (one JSON object on stdout).",
)


def stdout() -> Console:
    return Console(soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def say(message: str) -> None:
    """A line for the operator, on stderr (never pollutes JSON on stdout)."""
    stderr().print(message, highlight=False)


def emit(output: OutputFormat, data: dict[str, Any], table: Callable[[Console], None]) -> None:
    if output == OutputFormat.json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()
    else:
        table(stdout())


def key_value_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    out = Table(title=title, show_header=False, title_justify="left")
    out.add_column(style="bold")
    out.add_column(justify="right")
    for name, value in rows:
        out.add_row(name, "—" if value is None else str(value))
    return out


def interactive(output: OutputFormat) -> bool:
    return output == OutputFormat.table and sys.stderr.isatty() and os.environ.get("CI") is None


@contextmanager
def progress_bar(
    output: OutputFormat, description: str, total: float | None
) -> Iterator[Callable[..., None]]:
    """An ``update(completed=…, total=…, description=…)`` callable; a no-op off a terminal."""
    if not interactive(output):
        yield lambda **_: None
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    columns += [MofNCompleteColumn()] if total is None else []
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(**fields: Any) -> None:
            bar.update(task, **fields)

        yield update
