"""``cutover plan|hold|status|switch|rollback|finish``: hand a live queue from an old
consumer to a new one (northmigrate.cutover)."""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from northmigrate.aws import AwsClients
from northmigrate.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    emit,
    key_value_table,
    say,
    shown,
    stdout,
)
from northmigrate.cli.state import State, state
from northmigrate.config import AwsSettings, find_config_file
from northmigrate.cutover import (
    Cutover,
    CutoverStatus,
    Plan,
    StepReport,
    SwitchOptions,
    Target,
    plan,
    read_record,
    status,
)
from northmigrate.cutover.checks import DEFAULT_HOLD_S
from northmigrate.cutover.target import QueueMapping
from northmigrate.dlq.watch import OldestAge
from northmigrate.errors import EXIT_ATTENTION, InputError

cutover_app = typer.Typer(
    help="Hand a live queue from its old consumer (a Lambda event source mapping) to a new "
    "function without taking the service down: hold it (messages wait), switch it (with a "
    "canary), roll back, finish. Never two enabled mappings on the queue at once. "
    "docs/cutover.md tells the night step by step."
    "\n\nExamples:\n"
    '  northmigrate cutover hold --queue intake --reason "v2 night"\n'
    "  northmigrate cutover switch --queue intake --to svc-v2 --canary 1\n"
    "  northmigrate cutover rollback --queue intake",
    no_args_is_help=True,
)

QUEUE_OPTION = typer.Option(
    None,
    "--queue",
    metavar="NAME_OR_URL",
    help="The queue (a name or a URL); default: the config's main queue.",
)
TO_OPTION = typer.Option(..., "--to", metavar="FUNCTION", help="The new function (name or ARN).")


def _clients(st: State) -> AwsClients:
    """The config's clients when there is a config; else the flags' and AWS's own settings
    (a cutover needs no migration config)."""
    if st._clients is None and find_config_file(st.config_path, os.environ) is None:
        aws = AwsSettings(region=st.region, profile=st.profile, endpoint_url=st.endpoint_url)
        st._clients = AwsClients(aws)
    return st.clients()


def _queue(st: State, queue: str | None) -> str:
    if queue:
        return queue
    if find_config_file(st.config_path, os.environ) is None:
        raise InputError("no queue given", hint="pass --queue NAME_OR_URL")
    return st.settings.queue.name


def _target(st: State, queue: str | None) -> Target:
    clients = _clients(st)
    return Target(clients.client("sqs"), clients.client("lambda"), _queue(st, queue))


def _by() -> str:
    try:
        return f"operator {getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


def _cutover(st: State, target: Target) -> Cutover:
    clients = _clients(st)
    return Cutover(
        target,
        by=_by(),
        cloudwatch=clients.client("cloudwatch"),
        iam=clients.client("iam"),
        kms=clients.client("kms"),
    )


def _oldest(st: State, target: Target) -> OldestAge:
    return OldestAge(_clients(st).client("cloudwatch"), target.name, time.time)


def _mappings_table(mappings: list[QueueMapping]) -> Table:
    out = Table(title="event source mappings", title_justify="left")
    for column in ("function", "state", "batch", "limit", "item failures", "uuid"):
        out.add_column(column)
    for m in mappings:
        row = (
            m.function,
            m.state.state,
            "—" if m.batch_size is None else m.batch_size,
            m.state.limit_text,  # max concurrency, or a provisioned mapping's pollers
            "yes" if m.reports_item_failures else "no",
            m.uuid,
        )
        out.add_row(*map(shown, row))
    return out


def _record_rows(data: dict[str, Any]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("state", data["state"] or "no cutover under way")]
    if data["state"]:
        rows += [
            ("by", f"{data['by'] or '?'} at {data['at'] or '?'}"),
            ("why", data["reason"] or "no reason given"),
            ("old mappings", " ".join(data["from"]) or "none"),
            ("new function", data["to"] or "not chosen yet"),
        ]
    return rows


def _render_step(output: OutputFormat, report: StepReport) -> None:
    def table(console: Console) -> None:
        data = report.to_dict()
        rows: list[tuple[str, object]] = [("result", report.message), *_record_rows(data)]
        if report.canary is not None:
            canary = report.canary
            rows.append(("canary", "passed" if canary.ok else f"failed: {canary.reason}"))
            if not canary.errors_watched:
                rows.append(("  function errors", "not watched (CloudWatch unreadable)"))
        console.print(key_value_table(f"cutover {report.step}: {report.queue}", rows))
        console.print(_mappings_table(report.mappings))

    emit(output, report.to_dict(), table)


def _status_table(report: CutoverStatus) -> Table:
    data = report.to_dict()
    age = data["oldest_age_s"]
    rows: list[tuple[str, object]] = [
        ("held", "yes" if report.record.held else "no"),
        *_record_rows(data),
        ("depth", f"{data['depth']} ({data['visible']} visible, {data['in_flight']} in flight)"),
        ("oldest message", "unknown (CloudWatch)" if age is None else f"{age} s old"),
        ("retention", f"{report.retention_s} s"),
        *[("warning", text) for text in report.warnings],
    ]
    return key_value_table(f"cutover of {report.queue}", rows)


def _render_plan(output: OutputFormat, report: Plan) -> None:
    def table(console: Console) -> None:
        rows = [
            (c.name, ("ok" if c.ok else "unknown" if c.ok is None else "FAILED") + ": " + c.detail)
            for c in report.checks
        ]
        console.print(key_value_table(f"cutover plan: {report.queue} -> {report.to}", rows))
        for n, step in enumerate(report.steps, 1):
            console.print(shown(f"{n}. {step}"))

    emit(output, report.to_dict(), table)


@cutover_app.command("plan")
def cutover_plan(
    ctx: typer.Context,
    queue: str | None = QUEUE_OPTION,
    to: str = TO_OPTION,
    old: str | None = typer.Option(
        None, "--from", metavar="FUNCTION", help="The old function (checked to be the consumer)."
    ),
    hold_for: int = typer.Option(
        DEFAULT_HOLD_S,
        "--hold-for",
        min=0,
        metavar="S",
        help="How long the hold may last: the retention must leave that much room.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Check what a safe switch needs and print the steps; changes nothing. Exit 1 when a
    check fails (it is named).

    Checks: exactly one consumer enabled (or a hold); the retention leaves room for the hold;
    a DLQ with a redrive policy; the visibility timeout at least 6 x the new function's
    timeout; the new mapping reports batch item failures; the new function's role may
    receive, delete and change visibility on the queue (and decrypt with its KMS key).

    Examples:
      northmigrate cutover plan --queue intake --to svc-v2
      northmigrate cutover plan --queue intake --to svc-v2 --from svc-v1
    """
    st = state(ctx)
    target = _target(st, queue)
    clients = _clients(st)
    report = plan(
        target,
        to,
        clients.client("iam"),
        old=old,
        record=read_record(target.sqs, target.url),
        kms=clients.client("kms"),
        hold_s=hold_for,
        oldest_age=_oldest(st, target).get,
    )
    _render_plan(output, report)
    if not report.ok:
        raise typer.Exit(EXIT_ATTENTION)


@cutover_app.command("hold")
def cutover_hold(
    ctx: typer.Context,
    queue: str | None = QUEUE_OPTION,
    reason: str | None = typer.Option(
        None, "--reason", metavar="TEXT", help="Why, for whoever looks next (cutover status)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Disable the queue's consumer (every enabled mapping) and wait until it is Disabled:
    messages wait in the queue. Records who held it, when and why (queue tags).

    Examples:
      northmigrate cutover hold --queue intake --reason "v2 night"
      northmigrate cutover hold --queue "$INTAKE_QUEUE_URL"
    """
    st = state(ctx)
    _render_step(output, _cutover(st, _target(st, queue)).hold(reason))


@cutover_app.command("switch")
def cutover_switch(
    ctx: typer.Context,
    queue: str | None = QUEUE_OPTION,
    to: str = TO_OPTION,
    batch_size: int = typer.Option(
        10, "--batch-size", min=1, max=10, metavar="N", help="Messages per invocation, once open."
    ),
    max_concurrency: int | None = typer.Option(
        None,
        "--max-concurrency",
        min=2,
        max=1000,
        metavar="N",
        help="The new mapping's maximum concurrency once open (default: no cap).",
    ),
    canary: int | None = typer.Option(
        None,
        "--canary",
        min=1,
        max=10,
        metavar="N",
        help="Start with batches of N at a maximum concurrency of 2, and watch.",
    ),
    canary_wait: float = typer.Option(
        60.0, "--canary-wait", min=0, help="How long the canary is watched (seconds)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Feed the held queue to the new function: its mapping (created disabled, reporting
    batch item failures, if it has none) is enabled once every other mapping is Disabled. The
    old mapping stays, disabled (rollback enables it again; finish deletes it).

    With --canary N it starts with batches of N at a maximum concurrency of 2 and watches the
    new function's errors (CloudWatch), the DLQ and the mapping for --canary-wait seconds,
    then opens fully; or it disables the new mapping again, holds the queue with the reason
    and exits 1. AWS publishes a function's errors a minute or more late: on AWS, wait a few
    minutes.

    Examples:
      northmigrate cutover switch --queue intake --to svc-v2
      northmigrate cutover switch --to svc-v2 --canary 1 --canary-wait 90  # main queue
      northmigrate cutover switch --queue intake --to svc-v2 --max-concurrency 20
    """
    st = state(ctx)
    options = SwitchOptions(batch_size, max_concurrency, canary, canary_wait)
    report = _cutover(st, _target(st, queue)).switch(to, options)
    _render_step(output, report)
    if not report.ok:
        raise typer.Exit(EXIT_ATTENTION)


@cutover_app.command("rollback")
def cutover_rollback(
    ctx: typer.Context, queue: str | None = QUEUE_OPTION, output: OutputFormat = OUTPUT_OPTION
) -> None:
    """Go back: disable the new mapping, wait until it is Disabled, then enable the old one
    again; the cutover's record is removed.

    Examples:
      northmigrate cutover rollback --queue intake
      northmigrate cutover rollback --queue intake --output json
    """
    st = state(ctx)
    _render_step(output, _cutover(st, _target(st, queue)).rollback())


@cutover_app.command("finish")
def cutover_finish(
    ctx: typer.Context,
    queue: str | None = QUEUE_OPTION,
    yes: bool = typer.Option(False, "--yes", help="Do not ask."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Delete the old mapping once the new one reads the queue (no rollback after this);
    asks first unless --yes.

    Examples:
      northmigrate cutover finish --queue intake
      northmigrate cutover finish --queue intake --yes
    """
    st = state(ctx)
    target = _target(st, queue)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("cutover finish deletes the old mapping", hint="pass --yes")
        if not typer.confirm(f"Delete the old mapping of {target.name}?", err=True):
            say("nothing deleted")
            raise typer.Exit(EXIT_ATTENTION)
    _render_step(output, _cutover(st, target).finish())


@cutover_app.command("status")
def cutover_status(
    ctx: typer.Context,
    queue: str | None = QUEUE_OPTION,
    once: bool = typer.Option(False, "--once", help="Print once and exit (for scripts)."),
    interval: float = typer.Option(2.0, "--interval", min=0.5, help="Seconds between refreshes."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Held or not, by whom and why; the backlog (depth, the oldest message's age against
    the retention period, with a warning once it has waited half of it) and each mapping
    with its state. On a terminal a live panel until Ctrl-C.

    Examples:
      northmigrate cutover status --queue intake
      northmigrate cutover status --queue intake --output json
    """
    st = state(ctx)
    target = _target(st, queue)
    oldest = _oldest(st, target)

    def sample() -> CutoverStatus:
        return status(target, oldest.get())

    def panel(report: CutoverStatus) -> Table:
        grid = Table.grid()
        grid.add_row(_status_table(report))
        grid.add_row(_mappings_table(report.mappings))
        return grid

    report = sample()
    if once or output == OutputFormat.json or not sys.stdout.isatty():
        emit(output, report.to_dict(), lambda console: console.print(panel(report)))
        return
    _live(lambda: panel(sample()), panel(report), interval)


def _live(make: Callable[[], Table], first: Table, interval: float) -> None:
    with (
        contextlib.suppress(KeyboardInterrupt),
        Live(first, console=stdout(), auto_refresh=False) as live,
    ):
        while True:
            time.sleep(interval)
            live.update(make(), refresh=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cutover_app, name="cutover")
