"""Progress lines that tell the truth and fit the terminal.

One line on stderr: a spinner, what is happening, a short bar, the percentage and the time
elapsed. The figures come from the command (``enqueue_figures``, ``worker_figures``): a bar
is full only when the work is done (every record sent and confirmed, every message of the
queue handled), and its total is what is known (the source's size, the queue's depth), never
``?`` when it can be estimated. The text is chosen among variants, longest first, so that the
whole line fits the terminal's width (80 columns included): it is never cut.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from northmigrate.cli.output import OutputFormat, interactive, stderr

if TYPE_CHECKING:
    from northmigrate.consume.worker import WorkerReport
    from northmigrate.enqueue.job import EnqueueReport

BAR_WIDTH = 10
# spinner 1, bar, percentage 4, elapsed 7, and the gaps between the five columns
FIXED_WIDTH = 1 + BAR_WIDTH + 4 + 7 + 4
SEP = " · "


@dataclass(frozen=True)
class Figures:
    """One update of a progress line: ``completed`` of ``total`` (None: not known yet), and
    the text in variants, longest first."""

    completed: float
    total: float | None
    variants: Sequence[str]


def fitting(variants: Sequence[str], width: int) -> str:
    """The longest variant that fits ``width`` columns (the last one, cut, if none does)."""
    for text in variants:
        if len(text) <= width:
            return text
    last = variants[-1] if variants else ""
    return last if len(last) <= width else last[: max(0, width - 1)] + "…"


def description(figures: Figures, columns: int) -> str:
    """The text of ``figures`` for a terminal ``columns`` wide (the rest of the line is
    the spinner, the bar, the percentage and the time)."""
    return fitting(figures.variants, max(10, columns - FIXED_WIDTH - 1))


def _n(value: int) -> str:
    return f"{value:,}"


def enqueue_figures(report: EnqueueReport, *, sending: bool) -> Figures:
    """validate/enqueue: items accounted for (rejected, skipped, or sent and confirmed by
    SQS; for a run that sends nothing, checked) out of the items the source holds, estimated
    from how much of it was read while the read goes on."""
    t = report.tally
    accounted = t.read
    if sending:
        accounted = t.invalid + t.duplicates + t.ineligible + report.enqueued + report.failed
    done, size = report.source_done, report.source_total
    total: float | None = None
    if size is not None and done >= size:
        total = t.read
    elif size and done:
        total = max(t.read, round(t.read * size / done))
    read, rejected = _n(t.read), _n(t.errors_total)
    if not sending:
        variants = [
            f"read {read} · valid {_n(t.valid)} · rejected {rejected}",
            f"read {read} · rejected {rejected}",
            f"read {read}",
        ]
    else:
        sent = _n(report.enqueued)
        waiting = max(0, t.eligible - report.enqueued - report.failed)
        variants = [
            f"read {read} · sent {sent} · sending {_n(waiting)} · rejected {rejected}",
            f"read {read} · sent {sent} · rejected {rejected}",
            f"sent {sent} of {read} read",
            f"sent {sent}",
        ]
    return Figures(accounted, float(total) if total is not None else None, variants)


def worker_figures(report: WorkerReport) -> Figures:
    """worker: messages handled out of those handled plus what the queue still holds
    (waiting, in flight, delayed), once the queue's depth is known."""
    processed = report.processed
    depth = report.depth
    total = None if depth is None else float(processed + depth.total)
    done = (
        f"migrated {_n(report.succeeded)} · retried {_n(report.retried)} · "
        f"dead-lettered {_n(report.dead_lettered)}"
    )
    short = (
        f"ok {_n(report.succeeded)} · retry {_n(report.retried)} · dlq {_n(report.dead_lettered)}"
    )
    if depth is None:
        return Figures(processed, None, [done, short])
    queue = f"waiting {_n(depth.visible + depth.delayed)} · in flight {_n(depth.in_flight)}"
    return Figures(
        processed,
        total,
        [
            f"{done} · {queue}",
            f"migrated {_n(report.succeeded)} · retried {_n(report.retried)} · "
            f"dlq {_n(report.dead_lettered)} · {queue}",
            f"{short} · {queue}",
            f"{short} · in queue {_n(depth.total)}",
            short,
        ],
    )


Update = Callable[[Figures], None]


def progress_columns() -> list[ProgressColumn]:
    return [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=BAR_WIDTH),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    ]


@contextmanager
def progress_line(output: OutputFormat, title: str) -> Iterator[Update]:
    """An ``update(Figures)`` callable drawing one line on stderr; a no-op off a terminal
    (or with ``--output json``)."""
    if not interactive(output):
        yield lambda _: None
        return
    with Progress(*progress_columns(), console=stderr(), transient=True) as bar:
        task = bar.add_task(title, total=None)
        lock = threading.Lock()

        def update(figures: Figures) -> None:
            with lock:
                bar.update(
                    task,
                    completed=figures.completed,
                    total=figures.total,
                    description=description(figures, bar.console.width),
                )

        yield update


@contextmanager
def ticking(every_s: float, tick: Callable[[], None]) -> Iterator[None]:
    """Call ``tick`` every ``every_s`` seconds on a thread of its own while the block runs
    (for what moves while the calling thread waits: a sender draining), once more at the end."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every_s):
            tick()

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        tick()
