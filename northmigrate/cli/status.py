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

from northmigrate.aws.clients import aws_errors
from northmigrate.aws.sqs.queue import queue_arn
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, key_value_table, stdout
from northmigrate.cli.state import state
from northmigrate.consume.lambda_side import WINDOW_MIN, FunctionSide, lambda_side
from northmigrate.consume.tap import TapState, read_state
from northmigrate.control import status as status_lib

LAMBDA_EVERY_S = 60.0


def _tap_rows(tap: TapState) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("tap", _tap_text(tap))]
    if not tap.open:
        rows.append(("  closed by", f"{tap.closed_by or '?'} at {tap.closed_at or '?'}"))
        rows.append(("  why", tap.reason or "no reason given"))
    return rows


def _figure(value: float | None, unit: str = "") -> str:
    return "?" if value is None else f"{value:,.0f}{unit}"


def _lambda_rows(sides: list[FunctionSide] | None) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for side in sides or []:
        m = side.mapping
        state = f"mapping {m.state.lower() or '?'}, {m.mode} (limit {m.limit_text})"
        rows.append((f"lambda {side.function}", state))
        if side.invocations is None:
            rows.append(("  metrics", "unavailable"))
            continue
        rows += [
            (
                f"  last {side.minutes} min",
                f"invocations {_figure(side.invocations)}, errors {_figure(side.errors)}, "
                f"throttles {_figure(side.throttles)}, "
                f"peak concurrency {_figure(side.peak_concurrency)}",
            ),
            (
                "  records",
                f"migrated {side.per_minute(side.migrated)}/min, "
                f"dead-lettered {side.per_minute(side.dead_lettered)}/min",
            ),
        ]
    return rows


def _render_status(
    report: status_lib.StatusReport,
    tap: TapState,
    sides: list[FunctionSide] | None,
    console: Console,
) -> None:
    rows: list[tuple[str, object]] = [
        ("", f"{report.main_queue} / {report.dlq}"),
        ("visible", f"{report.main.visible} / {report.dead.visible}"),
        ("in flight", f"{report.main.in_flight} / {report.dead.in_flight}"),
        ("delayed", f"{report.main.delayed} / {report.dead.delayed}"),
    ]
    console.print(key_value_table("queues (main / dlq)", rows))
    lines: list[tuple[str, object]] = [
        ("remaining in the main queue", report.main.total),
        ("dead-lettered", report.dead.total),
        *_run_rows(report),
    ]
    console.print(key_value_table("progress", lines + _tap_rows(tap) + _lambda_rows(sides)))


def _run_rows(report: status_lib.StatusReport) -> list[tuple[str, object]]:
    """The migration run's progress across its parts, the same in ``--once`` and live."""
    progress = report.progress
    if "run_id" not in progress:
        return []
    parts = progress["parts"]
    rows: list[tuple[str, object]] = [
        ("run", progress["run_id"] + (f" ({parts} parts)" if parts > 1 else "")),
        (
            "  done",
            f"{progress['done']} of {progress['enqueued']} ({progress['done_pct']}%)",
        ),
    ]
    if report.last_run is not None and report.last_run.source:
        rows.append(("  source", report.last_run.source))
    return rows


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


def _panel(
    report: status_lib.StatusReport,
    tap: TapState,
    trend: _Trend,
    sides: list[FunctionSide] | None = None,
) -> Table:
    rows: list[tuple[str, object]] = [
        ("main queue", report.main_queue),
        ("  visible", report.main.visible),
        ("  in flight", report.main.in_flight),
        ("  delayed", report.main.delayed),
        ("dead-letter queue", f"{report.dlq}: {report.dead.total}"),
        *_tap_rows(tap),
    ]
    rate = trend.rate
    eta = trend.eta_s(report.main.total)
    rows.append(("rate", f"{rate:,.1f} messages/s" if rate is not None else "measuring…"))
    if eta is not None:
        rows.append(("time to empty", f"{eta:,.0f} s"))
    rows += _run_rows(report)
    return key_value_table("status (Ctrl-C to stop)", rows + _lambda_rows(sides))


def status(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Print once and exit (for scripts)."),
    interval: float = typer.Option(2.0, "--interval", min=0.5, help="Seconds between refreshes."),
    minutes: int = typer.Option(
        WINDOW_MIN,
        "--minutes",
        min=1,
        max=1440,
        help="The Lambda side's window: its metrics over the last N minutes.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Depths of the main queue and the DLQ side by side, the tap (who closed it and why),
    the progress of the last run, and the Lambda side when a function reads the queue; on a
    terminal a live panel (with the drain rate and time to empty) that refreshes until Ctrl-C.

    Lambda side: per function, its invocations, errors, throttles and peak concurrency over
    the last --minutes (CloudWatch's AWS/Lambda), and the migrated and dead-lettered rates
    from the metrics the handler writes (namespace northmigrate).

    Progress: messages still in the main queue and in the DLQ; with a run state file
    (.northmigrate/last-run.json, written by enqueue) also how many of the last run's records
    are done. With --once, --output json, or off a terminal: one report, then exit.

    Examples:
      northmigrate status
      northmigrate status --once --output json
    """
    st = state(ctx)
    queues = st.queues()
    main_url, dlq_url = queues.main_url(), queues.dlq_url()
    clients = st.clients()

    def sample() -> tuple[status_lib.StatusReport, TapState]:
        with aws_errors("status"):
            return status_lib.status(queues.sqs, main_url, dlq_url), read_state(
                queues.sqs, main_url
            )

    def functions() -> list[FunctionSide] | None:
        with aws_errors("status"):
            arn = queue_arn(queues.sqs, main_url)
        return lambda_side(
            clients.client("lambda"),
            clients.client("cloudwatch"),
            arn,
            lambda: st.migration.name,
            minutes=minutes,
        )

    if once or output == OutputFormat.json or not sys.stdout.isatty():
        report, tap = sample()
        sides = functions()
        data = report.to_dict() | {
            "tap": tap.to_dict(),
            "lambda": None if sides is None else [side.to_dict() for side in sides],
        }
        emit(output, data, lambda console: _render_status(report, tap, sides, console))
        return
    trend = _Trend()
    report, tap = sample()
    sides, sides_at = functions(), time.monotonic()
    trend.add(time.monotonic(), report.main.total)
    with (
        contextlib.suppress(KeyboardInterrupt),
        Live(_panel(report, tap, trend, sides), console=stdout(), auto_refresh=False) as live,
    ):
        while True:
            time.sleep(interval)
            report, tap = sample()
            if time.monotonic() - sides_at >= LAMBDA_EVERY_S:  # CloudWatch: once a minute
                sides, sides_at = functions(), time.monotonic()
            trend.add(time.monotonic(), report.main.total)
            live.update(_panel(report, tap, trend, sides), refresh=True)


def register(app: typer.Typer) -> None:
    app.command()(status)
