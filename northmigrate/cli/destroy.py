"""``destroy``: remove the worker from Lambda (and the queues, when asked, losing nothing)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from northmigrate import deploy as deploy_lib
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, changes_table, emit, markup
from northmigrate.cli.state import state
from northmigrate.errors import InputError


def destroy(
    ctx: typer.Context,
    delete_queues: bool = typer.Option(
        False,
        "--delete-queues",
        help="Delete the main queue and the DLQ too (refused while the main queue holds "
        "messages, or the DLQ does without --export).",
    ),
    export: Path | None = typer.Option(
        None,
        "--export",
        metavar="FILE",
        help="Export the DLQ's messages, whole, to FILE (JSONL, mode 0600) before deleting it; "
        "needs --show-pii.",
    ),
    show_pii: bool = typer.Option(
        False,
        "--show-pii",
        help="Allow the export to hold sensitive fields (it must, to lose nothing).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Remove the worker from Lambda: the mapping, the function, the role and the log group.

    The queues stay unless --delete-queues; a DLQ that holds messages is never deleted
    unless they are exported first (--export FILE).

    Examples:
      northmigrate destroy
      northmigrate destroy --delete-queues --export letters.jsonl
    """
    st = state(ctx)
    if export is not None and not delete_queues:
        raise InputError("--export only goes with --delete-queues")
    if export is not None and not show_pii:
        raise InputError(
            "the DLQ export keeps each record whole, sensitive fields included, so that "
            "nothing is lost when the DLQ is deleted",
            hint="add --show-pii to confirm (the file is created readable by you only)",
        )
    report = deploy_lib.destroy(
        st.clients(), st.settings, delete_queues=delete_queues, export=export
    )

    def table(console: Console) -> None:
        console.print(changes_table("destroy", report.changes))
        if report.export_file:
            console.print(
                markup("exported {} dead letters to {}", report.exported, report.export_file)
            )

    emit(output, report.to_dict(), table)


def register(app: typer.Typer) -> None:
    app.command()(destroy)
