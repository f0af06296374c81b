"""``deploy``: the worker on Lambda behind an SQS event source mapping."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from northmigrate import deploy as deploy_lib
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, changes_table, emit, markup, say
from northmigrate.cli.state import state
from northmigrate.deploy.package import Package
from northmigrate.errors import InputError


def _package_listing(console: Console, package: Package) -> None:
    """What goes in the function: the plugin's files and the pinned dependencies."""
    plugin = ", ".join(package.plugin_files) or "none (the plugin is part of northmigrate)"
    console.print(f"package: {package.files} files for {package.platform}", highlight=False)
    console.print(f"plugin files: {plugin}", highlight=False, soft_wrap=True)
    console.print(
        f"dependencies: {', '.join(package.requirements) or 'none'}",
        highlight=False,
        soft_wrap=True,
    )


def deploy(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan (what would be created or changed, and what the package holds); "
        "change nothing.",
    ),
    template: Path | None = typer.Option(
        None,
        "--template",
        metavar="FILE",
        help="Write the stack as a CloudFormation template (and the package as FILE's .zip) "
        "instead of deploying.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Deploy the worker to AWS Lambda behind an SQS event source mapping.

    Builds the package (northmigrate, the plugin module and their dependencies), then creates
    or updates the IAM role (least privilege), the log group, the function and the mapping
    (ReportBatchItemFailures, batch size, batching window, maximum concurrency). Run it again
    with nothing changed and it changes nothing. Settings: the [deploy] config section.

    Examples:
      northmigrate deploy --dry-run
      northmigrate deploy
      northmigrate deploy --template stack.json
    """
    st = state(ctx)
    if template is not None:
        if dry_run:
            raise InputError("--dry-run and --template do not go together")
        written = deploy_lib.template(st.clients(), st.settings, st.migration, template)

        def template_table(console: Console) -> None:
            console.print(markup("wrote {} ({})", written.template, ", ".join(written.resources)))
            console.print(
                markup(
                    "package: {} ({} bytes); upload it to s3://BUCKET/{} and deploy the "
                    "template with CodeBucket=BUCKET and --capabilities CAPABILITY_NAMED_IAM",
                    written.package,
                    written.package_size,
                    written.code_key,
                )
            )

        emit(output, written.to_dict(), template_table)
        return
    say("building the package…")
    report = deploy_lib.deploy(st.clients(), st.settings, st.migration, dry_run=dry_run)

    def table(console: Console) -> None:
        title = "deploy plan (dry run: nothing changed)" if dry_run else "deploy"
        console.print(changes_table(title, report.changes))
        console.print(
            markup(
                "function: {}  code: {} ({} bytes)  tap: {}",
                report.function_name,
                report.code_sha256,
                report.package_size,
                "open" if report.tap.open else "closed",
            )
        )
        if not report.changed:
            console.print("nothing to change: everything is as configured")
        if dry_run and report.package is not None:
            _package_listing(console, report.package)

    emit(output, report.to_dict(), table)


def register(app: typer.Typer) -> None:
    app.command()(deploy)
