"""stdin fed by a slow writer: each line is read as soon as its end has arrived (not when
64 KiB have), a line not yet ended is not read, and the first signal stops the run even while
nothing arrives, with a summary of what was read and sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.sources.files import read_jsonl
from northmigrate.sources.stream import ReadInterrupted, StreamSource
from tests.helpers import Project, cli_env
from tests.support.samples import write_records

DEADLINE_S = 60.0  # generous: a loaded machine


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Reader:
    """A StreamSource over the read end of a pipe, iterated on a thread of its own."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stop = threading.Event()
        self.source = StreamSource(
            "<stdin>", stream, read_jsonl, total=None, gz=False, stop=self.stop
        )
        self.items: list[Any] = []
        self.ended: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.source:
                assert item.text is not None, item.error
                self.items.append(json.loads(item.text))
        except BaseException as exc:
            self.ended = exc
        finally:
            self.done.set()


OPENERS = {
    "buffered, as sys.stdin.buffer": lambda fd: os.fdopen(fd, "rb"),
    "unbuffered": lambda fd: os.fdopen(fd, "rb", buffering=0),
}


@pytest.mark.parametrize("opener", OPENERS)
def test_lines_are_read_as_they_arrive_and_a_stop_ends_the_wait(opener: str) -> None:
    read_fd, write_fd = os.pipe()
    reader = Reader(OPENERS[opener](read_fd))
    try:
        for n in range(1, 4):
            os.write(write_fd, json.dumps({"n": n}).encode() + b"\n")
            wait_for(lambda n=n: len(reader.items) == n, f"line {n}")  # type: ignore[misc]
        os.write(write_fd, b'{"n": 4')  # no end yet: not a record
        time.sleep(0.3)
        assert reader.items == [{"n": 1}, {"n": 2}, {"n": 3}]
        reader.stop.set()  # the writer still open, nothing arriving
        assert reader.done.wait(DEADLINE_S), "the stop did not end the read"
        assert isinstance(reader.ended, ReadInterrupted)
    finally:
        os.close(write_fd)


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=6),
    st.data(),
    st.booleans(),
)
@settings(max_examples=30, deadline=None)
def test_any_split_of_the_bytes_gives_each_line_once_its_end_arrives(
    numbers: list[int], data: st.DataObject, bom: bool
) -> None:
    text = (b"\xef\xbb\xbf" if bom else b"") + b"".join(
        json.dumps({"n": n}).encode() + b"\n" for n in numbers
    )
    cuts = sorted(data.draw(st.sets(st.integers(1, len(text) - 1), max_size=8)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    read_fd, write_fd = os.pipe()
    reader = Reader(os.fdopen(read_fd, "rb"))
    sent = b""
    try:
        for piece in pieces:
            os.write(write_fd, piece)
            sent += piece
            ended = sent.count(b"\n")
            wait_for(lambda ended=ended: len(reader.items) >= ended, f"{ended} lines")  # type: ignore[misc]
            assert reader.items == [{"n": n} for n in numbers[:ended]]
        os.close(write_fd)
        write_fd = -1
        assert reader.done.wait(DEADLINE_S) and reader.ended is None
        assert reader.items == [{"n": n} for n in numbers]
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        reader.stop.set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_enqueue_from_a_slow_pipe_sends_as_lines_come_and_stops_on_the_first_signal(
    project: Project, signum: int
) -> None:
    project.cli("provision", check=True)
    write_records(project.root / "three.jsonl", 3, status="approved")
    process = subprocess.Popen(
        [sys.executable, "-m", "northmigrate", "enqueue", "-", "--output", "json"],
        cwd=project.root,
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write((project.root / "three.jsonl").read_text())  # not a full batch
    process.stdin.flush()  # and the writer stays open
    wait_for(lambda: project.depth()["visible"] == 3, "the three records in the queue")
    try:
        process.send_signal(signum)  # the writer still open: only the signal can end it
        try:
            process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("the first signal did not stop enqueue") from None
    finally:
        process.stdin.close()
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    assert process.returncode == 130, err
    report = json.loads(out)
    assert (report["read"], report["enqueued"], report["interrupted"]) == (3, 3, True), err
