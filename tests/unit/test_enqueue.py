"""enqueue.run on an in-memory SQS: what is counted, settled and written as rejected, and
where an unfinished run resumes from."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from northmigrate import enqueue
from northmigrate.plugin import Migration
from northmigrate.records.rejects import RejectsWriter
from northmigrate.sources import SourceError, SourceItem
from northmigrate.sources.base import NoCheckpoint


class Row(BaseModel):
    id: str
    status: str


ROWS = Migration(
    name="rows",
    model=Row,
    key="id",
    handler=lambda record, ctx: None,
    eligible=lambda row: row.status == "ok",
)


def row(n: int, status: str = "ok") -> str:
    return json.dumps({"id": f"R{n}", "status": status})


class FakeSqs:
    """Confirms every entry but those of ``refused`` record ids (refused as the sender's
    fault, so they are not retried)."""

    def __init__(self, refused: Collection[str] = ()) -> None:
        self.refused = refused
        self.confirmed: list[str] = []
        self.lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        ok, failed = [], []
        for entry in Entries:
            record_id = json.loads(entry["MessageBody"])["record_id"]
            if record_id in self.refused:
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": "Invalid"})
            else:
                ok.append({"Id": entry["Id"]})
                with self.lock:
                    self.confirmed.append(record_id)
        return {"Successful": ok, "Failed": failed}


class Lines(NoCheckpoint):
    """A source of JSON lines; sets ``stop`` after ``stop_after`` items, or breaks there."""

    def __init__(
        self,
        texts: list[str],
        *,
        stop: threading.Event | None = None,
        stop_after: int | None = None,
        break_after: int | None = None,
    ) -> None:
        self.name = "lines"
        self.texts = texts
        self.stop = stop
        self.stop_after = stop_after
        self.break_after = break_after
        self.closed = False
        self.read = 0

    def __iter__(self) -> Iterator[SourceItem]:
        for n, text in enumerate(self.texts, 1):
            if self.break_after is not None and n > self.break_after:
                raise SourceError("the source broke")
            if self.stop is not None and self.stop_after is not None and n > self.stop_after:
                self.stop.set()
            self.read = n
            yield SourceItem(n, text=text)

    def progress(self) -> tuple[int, int | None]:
        return self.read, len(self.texts)

    def close(self) -> None:
        self.closed = True


class Checkpointed(Lines):
    """A source that keeps a checkpoint: it records what it is told was settled."""

    checkpointed = True

    def __init__(self, texts: list[str]) -> None:
        super().__init__(texts)
        self.settled: list[tuple[int | None, bool]] = []
        self.lock = threading.Lock()

    def settle(self, item: SourceItem, ok: bool) -> None:
        with self.lock:
            self.settled.append((item.line, ok))


def send(source: Any, sqs: Any, **options: Any) -> enqueue.EnqueueReport:
    return enqueue.run(
        source, ROWS, max_message_size=262_144, sqs=sqs, queue_url="q", concurrency=2, **options
    )


def test_failed_sends_are_counted_written_to_the_rejects_and_resume_from_the_first(
    tmp_path: Path,
) -> None:
    texts = [row(n) for n in range(1, 13)]
    sqs = FakeSqs(refused={"R9", "R4"})
    source = Lines(texts)
    with RejectsWriter(tmp_path / "rejects.jsonl") as rejects:
        report = send(source, sqs, rejects=rejects)
    assert (report.enqueued, report.failed, report.tally.eligible) == (10, 2, 12)
    assert report.resume_from_line == 4 and not report.complete
    assert sorted(sqs.confirmed) == sorted(f"R{n}" for n in range(1, 13) if n not in (4, 9))
    written = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert sorted(json.loads(w["raw"])["id"] for w in written) == ["R4", "R9"]
    assert all("SQS refused the message" in w["error"] for w in written)
    assert source.closed and report.source_done == 12 and report.source_total == 12


def test_a_limit_stops_the_run_and_resumes_after_the_last_line_read() -> None:
    texts = [row(1), row(2, "draft"), row(3), row(4), row(5), row(6)]
    report = send(Lines(texts), FakeSqs(), limit=3)
    assert report.enqueued == 3 and report.tally.ineligible == 1
    assert report.resume_from_line == 5 and report.complete


def test_from_line_skips_what_was_sent() -> None:
    sqs = FakeSqs()
    report = send(Lines([row(n) for n in range(1, 8)]), sqs, from_line=5)
    assert sorted(sqs.confirmed) == ["R5", "R6", "R7"] and report.tally.read == 3
    assert report.resume_from_line is None


def test_stop_interrupts_the_read_and_sends_what_was_checked() -> None:
    stop = threading.Event()
    sqs = FakeSqs()
    source = Lines([row(n) for n in range(1, 10)], stop=stop, stop_after=4)
    report = send(source, sqs, stop=stop)
    assert (
        report.interrupted
        and report.enqueued == 4
        and sorted(sqs.confirmed)
        == [
            "R1",
            "R2",
            "R3",
            "R4",
        ]
    )
    assert report.resume_from_line == 5 and source.closed


def test_a_source_that_breaks_ends_the_run_with_its_error() -> None:
    source = Lines([row(n) for n in range(1, 10)], break_after=6)
    report = send(source, FakeSqs())
    assert isinstance(report.error, SourceError) and report.enqueued == 6
    assert report.resume_from_line == 7 and source.closed


def test_settled_hears_of_every_item_once() -> None:
    texts = [row(1), row(2, "draft"), "{not json", row(4), row(5)]
    outcomes: dict[int | None, bool] = {}
    lock = threading.Lock()

    def settled(item: SourceItem, ok: bool) -> None:
        with lock:
            assert item.line not in outcomes
            outcomes[item.line] = ok

    report = send(Lines(texts), FakeSqs(refused={"R4"}), settled=settled)
    assert report.enqueued == 2 and report.failed == 1
    assert outcomes == {1: True, 2: True, 3: True, 4: False, 5: True}


def test_a_checkpointed_source_is_settled_by_the_run_only_when_it_sends() -> None:
    texts = [row(1), row(2, "draft"), row(3)]
    sending = Checkpointed(texts)
    send(sending, FakeSqs(refused={"R3"}))
    assert sorted(sending.settled) == [(1, True), (2, True), (3, False)]
    for options in ({"dry_run": True}, {"sqs": None}):
        quiet = Checkpointed(texts)
        enqueue.run(quiet, ROWS, max_message_size=262_144, queue_url="q", **options)
        assert quiet.settled == []
    told: list[int | None] = []
    instead = Checkpointed(texts)
    send(instead, FakeSqs(), settled=lambda item, ok: told.append(item.line))
    assert sorted(told) == [1, 2, 3] and instead.settled == []  # called instead, not as well
