"""Commands that set things up: local, provision, sample."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from northmigrate import sample as sample_lib
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, markup, say, shown
from northmigrate.cli.state import state
from northmigrate.errors import InputError
from northmigrate.local import DEFAULT_PORT, EmbeddedEndpoint
from northmigrate.provision import provision as provision_lib


def local(
    port: int = typer.Option(
        DEFAULT_PORT, "--port", "-p", help="Port to listen on (0: any free port)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Run the embedded AWS endpoint (SQS, DynamoDB, S3, …) in the foreground until Ctrl-C.

    Point a config at it with aws.endpoint_url (config/local.toml does). It keeps its data in
    memory: stopping it forgets every queue and table.
    """
    endpoint = EmbeddedEndpoint(host=host, port=port)
    url = endpoint.start()
    print(url, flush=True)
    say("embedded AWS endpoint listening on {} (Ctrl-C to stop)", url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        endpoint.stop()


def provision(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Create or update the main queue, its DLQ (with the redrive policy) and what the plugin
    needs (the example's DynamoDB table). Idempotent: a second run changes nothing."""
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
    app.command()(local)
    app.command()(provision)
    app.command()(sample)
