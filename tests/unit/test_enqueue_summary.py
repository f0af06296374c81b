"""What enqueue prints when it stops early: the endpoint went away mid-run (one row and one
line with the count and the command that continues, not a row per record), a canary."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import botocore.exceptions
from pydantic import BaseModel
from rich.console import Console

from northmigrate import enqueue
from northmigrate.cli.enqueue import _notes
from northmigrate.cli.records import _render
from northmigrate.plugin import Migration
from northmigrate.sources import SourceItem
from northmigrate.sources.base import NoCheckpoint


class Row(BaseModel):
    id: str


ROWS = Migration(name="rows", model=Row, key="id", handler=lambda record, ctx: None)


class Rows(NoCheckpoint):
    name = "rows.jsonl"

    def __init__(self, count: int) -> None:
        self.count = count

    def __iter__(self) -> Any:
        for n in range(1, self.count + 1):
            yield SourceItem(n, text=json.dumps({"id": f"R{n}"}))

    def progress(self) -> tuple[int, int | None]:
        return 0, None

    def close(self) -> None:
        pass


class GoesAway:
    """Confirms the first ``calls`` batches, then the endpoint is gone."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        with self.lock:
            self.calls -= 1
            if self.calls < 0:
                raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def rendered(report: enqueue.EnqueueReport) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None, record=True)
    _render(report, console, "enqueue")
    return console.export_text()


def test_an_endpoint_gone_mid_run_is_one_row_and_one_line_with_the_command() -> None:
    report = enqueue.run(
        Rows(200), ROWS, max_message_size=262_144, sqs=GoesAway(2), queue_url="q", concurrency=1
    )
    assert report.error is not None and report.failed >= 2  # a batch in flight at least
    assert report.resume_from_line == 21
    table = rendered(report)
    assert table.count("cannot reach") == 1, table
    assert f"21, 22, 23 +{report.failed - 3}" in table and f"{report.failed} records" in table
    command = "northmigrate enqueue rows.jsonl --from-line 21"
    notes = _notes(report, None, command)
    assert len(notes) == 1
    template, *data = notes[0]
    line = " ".join(template.format(*data).split())
    assert line.count("cannot reach") == 1
    assert f"{report.failed} records were not sent (cannot reach" in line
    assert line.endswith(f"continue with: {command}[/red]")


def test_a_canary_names_its_limit_and_the_command() -> None:
    report = enqueue.run(
        Rows(12), ROWS, max_message_size=262_144, sqs=GoesAway(99), queue_url="q", limit=5
    )
    command = "northmigrate enqueue rows.jsonl --from-line 6"
    ((template, *data),) = _notes(report, 5, command)
    text = template.format(*data)
    assert "stopped after 5 (--limit); continue with:\n  " + command in text
    assert "not everything" not in rendered(report)


def test_an_interrupted_run_says_so_and_gives_the_command() -> None:
    stop = threading.Event()

    class StopsAt5(Rows):
        def __iter__(self) -> Any:
            for item in super().__iter__():
                if item.line == 5:
                    stop.set()  # Ctrl-C while line 5 is read
                yield item

    report = enqueue.run(
        StopsAt5(12), ROWS, max_message_size=262_144, sqs=GoesAway(99), queue_url="q", stop=stop
    )
    assert report.interrupted and report.resume_from_line == 5
    command = "northmigrate enqueue rows.jsonl --from-line 5"
    ((template, *data),) = _notes(report, None, command)
    assert template.format(*data).startswith("[yellow]interrupted; continue with:\n  " + command)
