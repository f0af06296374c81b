"""``init``: a starter northmigrate.toml, and with ``--plugin NAME`` a plugin skeleton."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

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
      northmigrate init --plugin accounts_v2
    """
    written = write_starter(Path.cwd(), aws=aws, plugin=plugin, force=force)
    if aws:
        steps = ["edit northmigrate.toml (queue.name, migration.plugin)", "northmigrate doctor"]
    else:
        steps = ["northmigrate local &", "northmigrate provision", "northmigrate doctor"]
    if plugin:
        steps.insert(0, f"pytest test_{plugin}.py")

    def table(console: Console) -> None:
        for path in written:
            console.print(shown(f"wrote {path.name}"))
        console.print("next: " + "; ".join(steps), highlight=False)

    emit(output, {"written": [str(path) for path in written], "next": steps}, table)
    if output == OutputFormat.json:
        say("wrote {}", ", ".join(path.name for path in written))


def register(app: typer.Typer) -> None:
    app.command()(init)
