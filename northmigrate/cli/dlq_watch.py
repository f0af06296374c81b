"""``dlq watch``: the DLQ's depth, oldest age and inflow, and the main queue's tap."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer

from northmigrate import dlq
from northmigrate.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    age_text,
    emit,
    key_value_table,
    plain,
)
from northmigrate.cli.signals import graceful_stop
from northmigrate.cli.state import state
from northmigrate.consume.tap import TapState
from northmigrate.errors import EXIT_ATTENTION


def _line(sample: dlq.Sample) -> str:
    stamp = datetime.fromtimestamp(sample.at, UTC).strftime("%H:%M:%S")
    age = age_text(sample.oldest_age_s) or "?"
    flag = "  ALERT" if sample.alert else ""
    return (
        f"{stamp} {sample.queue}: visible {sample.depth.visible} in flight "
        f"{sample.depth.in_flight} delayed {sample.depth.delayed} oldest {age} "
        f"inflow +{sample.inflow}{flag}{_tap_note(sample.tap)}"
    )


def _tap_row(tap: TapState | None) -> str:
    if tap is None:
        return "unknown"
    return _tap_note(tap).strip() or "open"


def _tap_note(tap: TapState | None) -> str:
    if tap is None or tap.open:
        return ""
    return f"  TAP CLOSED by {tap.closed_by or '?'}: {tap.reason or 'no reason given'}"


def watch(
    ctx: typer.Context,
    threshold: int = typer.Option(
        1, "--threshold", min=1, help="Alert when the DLQ holds at least N messages."
    ),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="Seconds between checks."),
    once: bool = typer.Option(
        False, "--once", help="Check once and exit: 1 at or over the threshold, else 0."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Watch the DLQ's depth, oldest age and inflow; --once for cron and CI.

    Live, one line per check goes to stderr until Ctrl-C; the last check is the summary.
    The exit code is that of the last check: 1 at or over the threshold, else 0.

    Examples:
      northmigrate dlq watch
      northmigrate dlq watch --once --threshold 1  # for cron and CI
    """
    st = state(ctx)
    queues = st.queues()
    url = queues.dlq_url()
    clients = st.clients()
    cloudwatch = None if once else clients.client("cloudwatch")
    last: dlq.Sample | None = None
    with graceful_stop("watch") as stop:
        watcher = dlq.Watcher(
            queues.sqs,
            url,
            threshold=threshold,
            interval=interval,
            cloudwatch=cloudwatch,
            stop=stop,
            main_url=queues.main_url(),
        )
        if once:
            last = watcher.sample()
        else:
            for sample in watcher.samples():
                last = sample
                print(plain(_line(sample)), file=sys.stderr, flush=True)
    if last is None:  # stopped before the first check
        last = watcher.sample()
    final = last
    emit(
        output,
        final.to_dict(),
        lambda console: console.print(
            key_value_table(
                "dlq watch",
                [
                    ("queue", final.queue),
                    ("visible", final.depth.visible),
                    ("in flight", final.depth.in_flight),
                    ("delayed", final.depth.delayed),
                    ("threshold", final.threshold),
                    ("alert", "YES" if final.alert else "no"),
                    ("inflow", final.inflow),
                    ("oldest", age_text(final.oldest_age_s)),
                    ("tap", _tap_row(final.tap)),
                ],
            )
        ),
    )
    if final.alert:
        raise typer.Exit(EXIT_ATTENTION)
