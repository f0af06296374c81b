"""``tap open|close|limit N|status``: one switch for every consumer of the main queue."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, markup, shown
from northmigrate.cli.state import State, state
from northmigrate.consume.tap import Tap, TapReport
from northmigrate.errors import InputError

tap_app = typer.Typer(
    help="Open, close or limit every consumer of the main queue (Lambda and local workers)."
    " The guard closes it in an outage and, with guard.reopen = probe, opens it again when"
    " a probe finds the target answering; under throttling it lowers the limit and raises it"
    " back step by step. A tap a person closed is only opened by a person."
    "\n\nExamples:\n"
    '  northmigrate tap close --reason "the new service is down"\n'
    "  northmigrate tap limit 5\n"
    "  northmigrate tap open",
    no_args_is_help=True,
)


def _tap(st: State) -> Tap:
    deploy = st.settings.deploy
    pollers = deploy.pollers
    return Tap(
        st.clients(),
        st.queues(),
        default_limit=deploy.max_concurrency,
        default_pollers=pollers[1] if pollers else None,
    )


def _render_tap(output: OutputFormat, report: TapReport) -> None:
    def table(console: Console) -> None:
        data = report.to_dict()
        limit = data["limit"] if data["limit"] is not None else "none"
        console.print(
            markup("tap of {}: [bold]{}[/bold], limit: {}", data["queue"], data["tap"], limit),
            highlight=False,
        )
        if report.state.limit is not None and report.state.limit_by:
            console.print(
                markup(
                    "limit {} set by {}: {}",
                    report.state.limit,
                    report.state.limit_by,
                    report.state.limit_reason or "no reason given",
                ),
                highlight=False,
            )
        if report.state.open and report.state.opened:
            console.print(markup("last opened by {}", report.state.opened), highlight=False)
        if not report.state.open:
            console.print(
                markup(
                    "closed by {} at {}: {}",
                    report.state.closed_by or "?",
                    report.state.closed_at or "?",
                    report.state.reason or "no reason given",
                ),
                highlight=False,
            )
        if not report.mappings:
            console.print("no event source mapping (local workers only)")
            return
        out = Table(title="event source mappings", title_justify="left")
        for column in ("function", "state", "mode", "limit", "uuid"):
            out.add_column(column)
        for m in report.mappings:
            out.add_row(*map(shown, (m.function, m.state, m.mode, m.limit_text, m.uuid)))
        console.print(out)

    emit(output, report.to_dict(), table)


@tap_app.command("open")
def tap_open(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Resume consumption: enable the mappings and let local workers receive again (also
    after the guard closed the tap, when guard.reopen = "manual" or before its next probe).

    Examples:
      northmigrate tap open
      northmigrate tap open --output json
    """
    _render_tap(output, _tap(state(ctx)).open())


@tap_app.command("close")
def tap_close(
    ctx: typer.Context,
    reason: str | None = typer.Option(
        None, "--reason", metavar="TEXT", help="Why, for whoever looks next (tap status)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Stop all consumption: local workers stop receiving within seconds, mappings are
    disabled. Messages wait in the queue.

    Examples:
      northmigrate tap close --reason "the new service is down"
      northmigrate tap close
    """
    _render_tap(output, _tap(state(ctx)).close(by="operator", reason=reason))


@tap_app.command("limit")
def tap_limit(
    ctx: typer.Context,
    n: str = typer.Argument(
        ...,
        metavar="N",
        help="2 to 1000 (to 10,000 pollers in provisioned mode), or 'none' to lift it.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Cap consumption: the mappings' maximum concurrency (in provisioned mode, their maximum
    pollers: AWS takes no maximum concurrency there), and each local worker's rate (records
    per second). The guard never raises the tap above a limit set here: under throttling it
    lowers it, and gives it back once the throttling stops.

    Examples:
      northmigrate tap limit 20
      northmigrate tap limit none  # lift the limit
    """
    if n.lower() in {"none", "off"}:
        limit = None
    elif n.isdigit():
        limit = int(n)
    else:
        raise InputError(f"tap limit takes a number or 'none', not {n!r}")
    _render_tap(output, _tap(state(ctx)).limit(limit))


@tap_app.command("status")
def tap_status(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show the tap: open or closed (by whom, when, why), the limit (set by an operator or
    lowered by the guard under throttling, and why), and the state of each mapping.

    Examples:
      northmigrate tap status
      northmigrate tap status --output json
    """
    _render_tap(output, _tap(state(ctx)).status())


def register(app: typer.Typer) -> None:
    app.add_typer(tap_app, name="tap")
