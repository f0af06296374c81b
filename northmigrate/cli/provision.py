"""``provision``: the main queue, its DLQ and what the plugin needs, created or updated."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, markup, shown
from northmigrate.cli.state import state
from northmigrate.control.provision import provision as provision_lib


def provision(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Create or update the main queue, its DLQ (with the redrive policy) and what the plugin
    needs (the example's DynamoDB table). Idempotent: a second run changes nothing.

    Examples:
      northmigrate provision
      northmigrate --profile migration provision --output json
    """
    st = state(ctx)
    report = provision_lib(st.clients(), st.settings, st.migration)

    def table(console: Console) -> None:
        out = Table(title="provision", title_justify="left")
        for column in ("resource", "name", "action", "changed"):
            out.add_column(column)
        for change in report.changes:
            row = (change.resource, change.name, change.action, ", ".join(change.changed))
            out.add_row(*map(shown, row))
        console.print(out)
        console.print(markup("queue: {}\ndlq:   {}", report.queue_url, report.dlq_url))
        if not report.changed:
            console.print("nothing to change: everything is as configured")

    emit(output, report.to_dict(), table)


def register(app: typer.Typer) -> None:
    app.command()(provision)
