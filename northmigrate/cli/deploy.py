"""The worker on Lambda: deploy, destroy, and the tap (open, close, limit, status)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from northmigrate import deploy as deploy_lib
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, markup, say, shown
from northmigrate.cli.state import State, state
from northmigrate.deploy.package import Package
from northmigrate.errors import InputError
from northmigrate.provision import Change
from northmigrate.tap import Tap, TapReport


def _changes_table(title: str, changes: list[Change]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in ("resource", "name", "action", "changed"):
        out.add_column(column, overflow="fold")
    for change in changes:
        row = (change.resource, change.name, change.action, ", ".join(change.changed))
        out.add_row(*map(shown, row))
    return out


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
        console.print(_changes_table(title, report.changes))
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
        console.print(_changes_table("destroy", report.changes))
        if report.export_file:
            console.print(
                markup("exported {} dead letters to {}", report.exported, report.export_file)
            )

    emit(output, report.to_dict(), table)


tap_app = typer.Typer(
    help="Open, close or limit every consumer of the main queue (Lambda and local workers).",
    no_args_is_help=True,
)


def _tap(st: State) -> Tap:
    return Tap(st.clients(), st.queues(), default_limit=st.settings.deploy.max_concurrency)


def _render_tap(output: OutputFormat, report: TapReport) -> None:
    def table(console: Console) -> None:
        data = report.to_dict()
        limit = data["limit"] if data["limit"] is not None else "none"
        console.print(
            markup("tap of {}: [bold]{}[/bold], limit: {}", data["queue"], data["tap"], limit),
            highlight=False,
        )
        if not report.mappings:
            console.print("no event source mapping (local workers only)")
            return
        out = Table(title="event source mappings", title_justify="left")
        for column in ("function", "state", "max concurrency", "uuid"):
            out.add_column(column)
        for m in report.mappings:
            concurrency = "—" if m.max_concurrency is None else str(m.max_concurrency)
            out.add_row(*map(shown, (m.function, m.state, concurrency, m.uuid)))
        console.print(out)

    emit(output, report.to_dict(), table)


@tap_app.command("open")
def tap_open(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Resume consumption: enable the mappings and let local workers receive again."""
    _render_tap(output, _tap(state(ctx)).open())


@tap_app.command("close")
def tap_close(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Stop all consumption: local workers stop receiving within seconds, mappings are
    disabled. Messages wait in the queue."""
    _render_tap(output, _tap(state(ctx)).close())


@tap_app.command("limit")
def tap_limit(
    ctx: typer.Context,
    n: str = typer.Argument(..., metavar="N", help="2 to 1000, or 'none' to lift the limit."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Cap consumption: the mappings' maximum concurrency, and each local worker's rate
    (records per second)."""
    if n.lower() in {"none", "off"}:
        limit = None
    elif n.isdigit():
        limit = int(n)
    else:
        raise InputError(f"tap limit takes a number or 'none', not {n!r}")
    _render_tap(output, _tap(state(ctx)).limit(limit))


@tap_app.command("status")
def tap_status(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show the tap: open or closed, the limit, and the state of each mapping."""
    _render_tap(output, _tap(state(ctx)).status())


def register(app: typer.Typer) -> None:
    app.command()(deploy)
    app.command()(destroy)
    app.add_typer(tap_app, name="tap")
