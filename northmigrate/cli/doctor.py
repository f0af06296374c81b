"""doctor: is this configuration and account ready for a safe migration?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from northmigrate import enqueue as enqueue_lib
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, shown
from northmigrate.cli.state import state
from northmigrate.control.doctor import Check, diagnose
from northmigrate.errors import EXIT_ATTENTION
from northmigrate.plugin import Migration
from northmigrate.sources import open_source

MARKS = {"pass": "[green]pass[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}


def doctor(
    ctx: typer.Context,
    source: str | None = typer.Option(
        None,
        "--source",
        help="Also check the largest record of this source against the queue's size limit.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Check the configuration and the account against what a safe migration needs.

    Credentials and region, the queues, the DLQ wiring and max_receive_count, DLQ retention,
    the visibility timeout, encryption, the message size limit, the plugin. Exit 1 when any
    check fails; each failure names its fix.

    Examples:
      northmigrate doctor
      northmigrate doctor --source records.jsonl --output json
    """
    st = state(ctx)
    settings = st.settings
    extra: list[Callable[[Migration[Any]], Check]] = []
    if source is not None:
        limit = settings.queue.max_message_size

        def largest(migration: Migration[Any]) -> Check:
            # A table or an object is read with the same clients as everything else.
            opened = open_source(source, clients=st.clients())
            report = enqueue_lib.run(opened, migration, max_message_size=limit)
            seen = report.largest_message
            if seen > limit:
                return Check(
                    "largest record",
                    "fail",
                    f"{source}: the largest record is {seen} bytes as a message; limit {limit}",
                    "raise queue.max_message_size (up to 1048576) and run provision",
                )
            return Check(
                "largest record", "pass", f"{source}: largest record {seen} bytes of {limit}"
            )

        extra.append(largest)
    report = diagnose(settings, st.clients(), extra=extra)

    def table(console: Console) -> None:
        out = Table(title="doctor", title_justify="left")
        for column in ("check", "", "detail", "fix"):
            out.add_column(column, overflow="fold")
        for check in report.checks:
            mark = MARKS[check.status]
            out.add_row(shown(check.name), mark, shown(check.detail), shown(check.fix or ""))
        console.print(out)

    emit(output, report.to_dict(), table)
    if not report.ok:
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
