"""``status``: both queues, the tap and the last run's progress, once or as a live panel."""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from northmigrate import status as status_lib
from northmigrate.aws import aws_errors
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, key_value_table, stdout
from northmigrate.cli.state import state
from northmigrate.tap import TapState, read_state


def _render_status(report: status_lib.StatusReport, console: Console) -> None:
    rows: list[tuple[str, object]] = [
        ("", f"{report.main_queue} / {report.dlq}"),
        ("visible", f"{report.main.visible} / {report.dead.visible}"),
        ("in flight", f"{report.main.in_flight} / {report.dead.in_flight}"),
        ("delayed", f"{report.main.delayed} / {report.dead.delayed}"),
    ]
    console.print(key_value_table("queues (main / dlq)", rows))
    progress = report.progress
    lines: list[tuple[str, object]] = [
        ("remaining in the main queue", progress["remaining"]),
        ("dead-lettered", progress["dead_lettered"]),
    ]
    if "run_id" in progress:
        lines = [
            ("run id", progress["run_id"]),
            ("enqueued", progress["enqueued"]),
            ("done", f"{progress['done']} ({progress['done_pct']}%)"),
            *lines,
        ]
    console.print(key_value_table("progress", lines))


@dataclass
class _Trend:
    """The main queue's drain rate over the last minute of samples, and the time to empty."""

    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=30))

    def add(self, at: float, remaining: int) -> None:
        self.samples.append((at, remaining))

    @property
    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, r0), (t1, r1) = self.samples[0], self.samples[-1]
        return max(0.0, (r0 - r1) / (t1 - t0)) if t1 > t0 else None

    def eta_s(self, remaining: int) -> float | None:
        rate = self.rate
        return remaining / rate if rate else None


def _tap_text(tap: TapState) -> Text:
    text = Text("open") if tap.open else Text("closed", style="red")
    return text.append(f", limited to {tap.limit}" if tap.limit else "")


def _panel(report: status_lib.StatusReport, tap: TapState, trend: _Trend) -> Table:
    rows: list[tuple[str, object]] = [
        ("main queue", report.main_queue),
        ("  visible", report.main.visible),
        ("  in flight", report.main.in_flight),
        ("  delayed", report.main.delayed),
        ("dead-letter queue", f"{report.dlq}: {report.dead.total}"),
        ("tap", _tap_text(tap)),
    ]
    rate = trend.rate
    eta = trend.eta_s(report.main.total)
    rows.append(("rate", f"{rate:,.1f} messages/s" if rate is not None else "measuring…"))
    if eta is not None:
        rows.append(("time to empty", f"{eta:,.0f} s"))
    progress = report.progress
    if "done_pct" in progress:
        rows.append(
            (
                "last run",
                f"{progress['run_id']}: {progress['done']} of "
                f"{progress['enqueued']} done ({progress['done_pct']}%)",
            )
        )
    return key_value_table("status (Ctrl-C to stop)", rows)


def status(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Print once and exit (for scripts)."),
    interval: float = typer.Option(2.0, "--interval", min=0.5, help="Seconds between refreshes."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Depths of the main queue and the DLQ side by side, the tap, and the progress of the
    last run; on a terminal a live panel (with the drain rate and time to empty) that
    refreshes until Ctrl-C.

    Progress: messages still in the main queue and in the DLQ; with a run state file
    (.northmigrate/last-run.json, written by enqueue) also how many of the last run's records
    are done. With --once, --output json, or off a terminal: one report, then exit.
    """
    queues = state(ctx).queues()
    main_url, dlq_url = queues.main_url(), queues.dlq_url()

    def sample() -> tuple[status_lib.StatusReport, TapState]:
        with aws_errors("status"):
            return status_lib.status(queues.sqs, main_url, dlq_url), read_state(
                queues.sqs, main_url
            )

    if once or output == OutputFormat.json or not sys.stdout.isatty():
        report, tap = sample()
        data = report.to_dict() | {"tap": {"open": tap.open, "limit": tap.limit}}
        emit(output, data, lambda console: _render_status(report, console))
        return
    trend = _Trend()
    report, tap = sample()
    trend.add(time.monotonic(), report.main.total)
    with (
        contextlib.suppress(KeyboardInterrupt),
        Live(_panel(report, tap, trend), console=stdout(), auto_refresh=False) as live,
    ):
        while True:
            time.sleep(interval)
            report, tap = sample()
            trend.add(time.monotonic(), report.main.total)
            live.update(_panel(report, tap, trend), refresh=True)


def register(app: typer.Typer) -> None:
    app.command()(status)
