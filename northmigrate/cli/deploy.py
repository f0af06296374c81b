"""``deploy``: the worker on Lambda behind an SQS event source mapping."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from northmigrate import deploy as deploy_lib
from northmigrate.aws.clients import shown_url
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, changes_table, emit, markup, say
from northmigrate.cli.state import State, state
from northmigrate.deploy.package import Package
from northmigrate.errors import InputError


def _package_listing(console: Console, package: Package) -> None:
    """What goes in the function: the plugin's files and the pinned dependencies."""
    plugin = ", ".join(package.plugin_files) or "none (the plugin is part of northmigrate)"
    # Names come from the plugin's directory and its distribution's metadata: shown as
    # text (a requirement's extras, pkg[extra], would otherwise read as markup).
    console.print(markup("package: {} files for {}", package.files, package.platform))
    if package.plugin_distribution:
        console.print(
            markup(
                "plugin: {} (installed distribution); its dependencies: {}",
                package.plugin_distribution,
                ", ".join(package.plugin_requirements) or "none",
            ),
            soft_wrap=True,
        )
    console.print(markup("plugin files: {}", plugin), soft_wrap=True)
    console.print(
        markup("dependencies: {}", ", ".join(package.requirements) or "none"), soft_wrap=True
    )


def _template(st: State, path: Path, output: OutputFormat, *, queues: bool, keep: bool) -> None:
    written = deploy_lib.template(
        st.clients(),
        st.settings,
        st.migration,
        path,
        queues=queues,
        keep_local_endpoint=keep,
    )

    def table(console: Console) -> None:
        console.print(markup("wrote {} ({})", written.template, ", ".join(written.resources)))
        console.print(markup("package: {} ({} bytes)", written.package, written.package_size))
        if written.endpoint_url:
            console.print(
                markup(
                    "the function's environment sets aws.endpoint_url = {}",
                    shown_url(written.endpoint_url),
                )
            )
        console.print(
            markup(
                "deploy it: sam deploy --template-file {} --stack-name NAME --resolve-s3 "
                "--capabilities CAPABILITY_IAM (see docs/deploy.md)",
                written.template,
            )
        )

    emit(output, written.to_dict(), table)


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
        help="Write the whole stack (queues, DLQ alarm, role, function, mapping) as a SAM "
        "template instead of deploying, and the package as FILE's .zip (its CodeUri).",
    ),
    no_queues: bool = typer.Option(
        False,
        "--no-queues",
        help="With --template: leave the queues out (they exist already, provision owns "
        "them); the template holds only the worker.",
    ),
    keep_local_endpoint: bool = typer.Option(
        False,
        "--keep-local-endpoint",
        help="With --template: keep a loopback aws.endpoint_url (an emulator on this "
        "machine) in the function's environment instead of refusing it.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Deploy the worker to AWS Lambda behind an SQS event source mapping.

    Builds the package (northmigrate, the plugin, local or an installed distribution, and
    their dependencies), then creates or updates the IAM role (least privilege), the log
    group, the function and the mapping (ReportBatchItemFailures, batch size, batching window,
    maximum concurrency). Run it again with nothing changed and it changes nothing. With
    --template FILE, writes the whole stack (queues included) as a SAM template instead.
    Settings: the [deploy] config section.

    Examples:
      northmigrate deploy --dry-run
      northmigrate deploy
      northmigrate deploy --template stack.json
    """
    st = state(ctx)
    if template is not None:
        if dry_run:
            raise InputError("--dry-run and --template do not go together")
        _template(st, template, output, queues=not no_queues, keep=keep_local_endpoint)
        return
    if no_queues or keep_local_endpoint:
        raise InputError("--no-queues and --keep-local-endpoint go with --template FILE")
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
