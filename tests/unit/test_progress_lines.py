"""The progress lines of enqueue and worker: what they count, and that they fit the terminal
(rendered with the same rich columns the commands draw, at 80 and 100 columns)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from northmigrate.aws.sqs.queue import Depth
from northmigrate.cli.progress import (
    Figures,
    description,
    enqueue_figures,
    progress_columns,
    worker_figures,
)
from northmigrate.consume.worker import WorkerReport
from northmigrate.enqueue.job import EnqueueReport
from northmigrate.records.validation import Tally


def drawn(figures: Figures, columns: int) -> str:
    """The line as the commands draw it on a terminal ``columns`` wide."""
    console = Console(file=io.StringIO(), width=columns, color_system=None, record=True)
    bar = Progress(*progress_columns(), console=console, auto_refresh=False)
    task = bar.add_task("", total=None)
    bar.update(
        task,
        completed=figures.completed,
        total=figures.total,
        description=description(figures, columns),
    )
    console.print(bar.make_tasks_table(bar.tasks))
    return console.export_text().rstrip("\n")


def report(read: int, invalid: int, enqueued: int, done: int, size: int | None) -> EnqueueReport:
    tally = Tally(read=read, valid=read - invalid, eligible=read - invalid, invalid=invalid)
    tally.errors_total = invalid
    return EnqueueReport(tally=tally, enqueued=enqueued, source_done=done, source_total=size)


def test_the_enqueue_bar_counts_records_sent_not_bytes_read() -> None:
    # the whole file read, 20 of its 290 eligible records confirmed by SQS so far
    figures = enqueue_figures(report(300, 10, 20, 50_000, 50_000), sending=True)
    assert (figures.completed, figures.total) == (30, 300)  # 10 rejected + 20 sent
    line = drawn(figures, 100)
    assert " 10%" in line and "100%" not in line
    assert "read 300 · sent 20 · sending 270 · rejected 10" in line
    finished = enqueue_figures(report(300, 10, 290, 50_000, 50_000), sending=True)
    assert finished.completed == finished.total == 300
    assert "100%" in drawn(finished, 80)


def test_the_enqueue_total_is_estimated_from_how_much_was_read() -> None:
    figures = enqueue_figures(report(150, 0, 100, 25_000, 100_000), sending=True)
    assert figures.total == 600 and figures.completed == 100
    validating = enqueue_figures(report(150, 0, 0, 25_000, 100_000), sending=False)
    assert (validating.completed, validating.total) == (150, 600)  # checked is done
    unknown = enqueue_figures(report(150, 0, 100, 25_000, None), sending=True)  # stdin
    assert unknown.total is None


def worker(done: int, depth: Depth | None) -> WorkerReport:
    return WorkerReport(succeeded=done, retried=done // 10, dead_lettered=done // 100, depth=depth)


def test_the_worker_total_is_what_it_handled_plus_what_the_queue_holds() -> None:
    figures = worker_figures(worker(200, Depth(visible=187, in_flight=30, delayed=3)))
    assert figures.completed == 200 + 20 + 2
    assert figures.total == 222 + 187 + 30 + 3
    line = drawn(figures, 120)
    assert "?" not in line and "+30 in flight" not in line
    assert "migrated 200 · retried 20 · dead-lettered 2" in line
    assert "waiting 190 · in flight 30" in line  # delayed retries wait too
    assert worker_figures(worker(5, None)).total is None  # before the first depth


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("done", [7, 1_234_567])
def test_every_line_fits_the_terminal_uncut(columns: int, done: int) -> None:
    lines = [
        worker_figures(worker(done, Depth(visible=done, in_flight=512, delayed=done // 10))),
        worker_figures(worker(done, None)),
        enqueue_figures(report(done, done // 20, done // 2, 10, 40), sending=True),
        enqueue_figures(report(done, done // 20, 0, 10, 40), sending=False),
    ]
    for figures in lines:
        line = drawn(figures, columns)
        text = description(figures, columns)
        assert "\n" not in line and len(line) <= columns, line
        assert text in line and "…" not in line  # the chosen text whole, never cut
        assert text == figures.variants[0] or columns < 100 or done > 1000
