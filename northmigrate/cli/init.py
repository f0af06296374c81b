"""``init``: a starter northmigrate.toml, and with ``--plugin NAME`` a plugin skeleton."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from northmigrate.aws.local import DEFAULT_PORT, OTHER, free_port, listener
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, say, shown
from northmigrate.starter import write_starter


def init(
    aws: bool = typer.Option(
        False, "--aws", help="The config for a real AWS account (default: the embedded endpoint)."
    ),
    plugin: str | None = typer.Option(
        None,
        "--plugin",
        metavar="NAME",
        help="Also write NAME.py, a plugin skeleton, and test_NAME.py, its test; the config "
        "names it. NAME is a module name that hides no standard or installed module (not "
        "json, os, pydantic…).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="The embedded endpoint's port in the config (default 4566, or a free one when "
        "another program listens on 4566).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Write a starter northmigrate.toml in the current directory, every key commented.

    The config is the one in the repository's config/ directory, shipped inside the package:
    the embedded endpoint by default, a real AWS account with --aws. With --plugin NAME it
    also writes NAME.py (a model, an idempotent conditional write, verify, sensitive fields,
    setup and the role's statements) and test_NAME.py, which runs against the embedded
    endpoint (pytest test_NAME.py), and the config names the plugin. A file that exists is
    left alone (exit 2, nothing written) unless --force.

    Examples:
      northmigrate init
      northmigrate init --aws
      northmigrate init --plugin accounts_v2 --port 4567
    """
    taken = None
    if not aws and port is None and listener("127.0.0.1", DEFAULT_PORT) == OTHER:
        # Not an embedded endpoint: a config pointing there would use that program's queues.
        taken, port = DEFAULT_PORT, free_port()
    written = write_starter(Path.cwd(), aws=aws, plugin=plugin, force=force, port=port)
    if aws:
        steps = ["edit northmigrate.toml (queue.name, migration.plugin)", "northmigrate doctor"]
    else:
        start = (
            "northmigrate local &"
            if port in (None, DEFAULT_PORT)
            else (f"northmigrate local --port {port} &")
        )
        steps = [start, "northmigrate provision", "northmigrate doctor"]
    if taken is not None:
        say(
            "port {} is another program's, not an embedded endpoint: this config uses port {}",
            taken,
            port,
        )
    if plugin:
        steps.insert(0, f"pytest test_{plugin}.py")

    def table(console: Console) -> None:
        for path in written:
            console.print(shown(f"wrote {path.name}"))
        console.print("next: " + "; ".join(steps), highlight=False)

    data = {"written": [str(path) for path in written], "next": steps, "port_taken": taken}
    emit(output, data, table)
    if output == OutputFormat.json:
        say("wrote {}", ", ".join(path.name for path in written))


def register(app: typer.Typer) -> None:
    app.command()(init)
