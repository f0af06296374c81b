"""demo: the whole story, narrated, on an embedded endpoint in this process."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from northmigrate import records
from northmigrate.aws.local import EmbeddedEndpoint
from northmigrate.cli.output import key_value_table, markup
from northmigrate.cli.signals import graceful_stop
from northmigrate.demo import run_demo
from northmigrate.errors import EXIT_ATTENTION


class RichNarrator:
    def __init__(self, console: Console) -> None:
        self.console = console

    def step(self, number: int, title: str, why: str) -> None:
        self.console.print()
        self.console.print(Panel(why, title=f"[bold]{number}. {title}[/bold]", title_align="left"))

    def note(self, text: str) -> None:
        self.console.print(markup("  {}", text), highlight=False)

    @contextlib.contextmanager
    def busy(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner with what is happening (on a terminal; nothing elsewhere)."""
        with self.console.status(markup("{}…", text), spinner="dots") as status:
            yield lambda now: status.update(markup("{}", now))  # fits 80 columns

    def result(self, kind: str, data: Any) -> None:
        show = getattr(self, f"_{kind}")
        show(data)

    def _rows(self, title: str, data: dict[str, Any], keys: list[str]) -> None:
        self.console.print(
            key_value_table(title, [(k.replace("_", " "), data.get(k)) for k in keys])
        )

    def _provision(self, data: dict[str, Any]) -> None:
        for change in data["changes"]:
            self.note(f"{change['resource']:<6} {change['name']:<28} {change['action']}")

    def _enqueue(self, data: dict[str, Any]) -> None:
        keys = [
            "read",
            "valid",
            "eligible",
            "ineligible",
            "invalid",
            "duplicates",
            "enqueued",
            "failed",
        ]
        self._rows("validate and enqueue", data, keys)
        for error in data["errors"][:4]:
            self.note(f"line {error['line']}: {error['error']}")
        if data["errors_total"] > 4:
            self.note(f"… {data['errors_total'] - 4} more in rejects.jsonl, each with its line")

    def _worker(self, data: dict[str, Any]) -> None:
        self._rows("worker", data, ["received", "succeeded", "retried", "dead_lettered"])
        for reason in data["reasons"][:4]:
            self.note(f"dead-lettered {reason['count']:>3} x {reason['reason']}")

    def _inspect(self, data: dict[str, Any]) -> None:
        self._rows("dlq inspect", data, ["visible", "oldest_age_s"])
        for reason in data["reasons"]:
            self.note(f"{reason['count']:>3} x {reason['reason']}")
        if data["messages"]:
            sample = data["messages"][0]
            body = sample["body"]
            record = body.get("record", body) if isinstance(body, dict) else body
            owners = record.get("owners") if isinstance(record, dict) else None
            shown = {"record_id": sample["record_id"], "owners": owners}
            self.note("one dead letter, sensitive fields masked:")
            self.console.print(Syntax(records.pretty(shown)[:800], "json", word_wrap=True))

    def _redrive(self, data: dict[str, Any]) -> None:
        self._rows("dlq redrive", data, ["matched", "moved", "failed", "mode"])

    def _reconcile(self, data: dict[str, Any]) -> None:
        keys = ["expected", "migrated", "rejected", "dead_lettered", "in_queue", "missing_total"]
        self._rows("reconcile", data, keys)


def demo(
    records: int = typer.Option(
        300, "--records", min=20, max=450, help="How many records to migrate."
    ),
    pause: bool = typer.Option(False, "--pause", help="Wait for Enter between steps."),
    keep: bool = typer.Option(
        False,
        "--keep",
        help="Leave the endpoint running afterwards, until Ctrl-C or SIGTERM, and print how "
        "to explore it.",
    ),
    port: int = typer.Option(0, "--port", help="Port of the embedded endpoint (0: any free one)."),
    directory: Path | None = typer.Option(
        None,
        "--dir",
        help="Where to write the records, rejects and config, and leave them (default: a "
        "temp dir, removed at the end unless --keep).",
    ),
) -> None:
    """The whole story on an embedded endpoint, narrated, in under a minute.

    Provision; export onboarding records (some invalid or ineligible); validate and enqueue
    while workers migrate; an outage and a bug send some records to the DLQ; inspect it; the
    fix ships; redrive; the last records migrate; reconcile accounts for every record.
    Exit 0 when nothing is missing.

    Examples:
      northmigrate demo
      northmigrate demo --pause
      northmigrate demo --keep --records 100
    """
    console = Console()  # wraps long lines (the narration) to the terminal's width
    temporary = directory is None
    workdir = directory or Path(tempfile.mkdtemp(prefix="northmigrate-demo-"))
    endpoint = EmbeddedEndpoint(port=port)
    url = endpoint.start()
    console.print(markup("[bold]northmigrate demo[/bold]: an embedded AWS endpoint at {}", url))
    try:

        def wait() -> None:
            if pause:
                input("  press Enter to go on… ")

        result = run_demo(
            url, RichNarrator(console), records=records, directory=workdir, pause=wait
        )
        outcome = result.reconcile
        console.print()
        if result.ok:
            console.print(
                f"[bold green]Every record accounted for:[/bold green] {outcome['migrated']} "
                f"migrated, {outcome['rejected']} rejected with their reasons, "
                f"{outcome['missing_total']} missing."
            )
        else:
            console.print(f"[bold red]{outcome['missing_total']} records missing[/bold red]")
        if keep:
            # Ctrl-C or SIGTERM, from the moment the message shows: the endpoint stops and the
            # demo exits with its own code; a second Ctrl-C aborts (130).
            with graceful_stop("shutting the endpoint down") as stop:
                console.print(
                    f"\nThe endpoint stays up at {url}; Ctrl-C stops it. Explore with:\n"
                    f"  cd {result.directory}\n  northmigrate status\n"
                    "  northmigrate dlq inspect\n  northmigrate reconcile onboarding.jsonl\n"
                    "  northmigrate enqueue onboarding.jsonl && northmigrate worker --until-empty",
                    highlight=False,
                )
                while not stop.wait(0.5):
                    pass
    finally:
        endpoint.stop()
        if temporary and not keep:  # about 280 KB of fake personal data: not left behind
            shutil.rmtree(workdir, ignore_errors=True)
            console.print(
                markup("\nremoved {} (--keep or --dir DIR keeps the files)", workdir),
                highlight=False,
            )
    if not result.ok:
        raise typer.Exit(EXIT_ATTENTION)


def register(app: typer.Typer) -> None:
    app.command()(demo)
