"""The file readers are linear in their input and bounded in memory, whatever it holds, and
stop at the first signal: long lines, numbers that never end, gigabytes of zeros."""

from __future__ import annotations

import gzip
import io
import json
import re
import threading
import time
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from northmigrate import records
from northmigrate.sources import SourceError
from northmigrate.sources.files import MAX_LINE_BYTES, read_csv, read_json_array, read_jsonl
from northmigrate.sources.stream import CountingReader, ReadInterrupted


class Endless(io.RawIOBase):
    """``prefix`` then ``fill`` forever (or for ``total`` bytes): a /dev/zero with a head."""

    def __init__(self, prefix: bytes, fill: bytes, total: int | None = None) -> None:
        self.prefix, self.fill, self.total, self.given = prefix, fill, total, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = len(buffer)
        if self.total is not None:
            n = min(n, self.total - self.given)
            if n <= 0:
                return 0
        head = self.prefix[self.given : self.given + n]
        data = head + self.fill * ((n - len(head)) // len(self.fill) + 1)
        buffer[:n] = data[:n]
        self.given += n
        return n


def stream(raw: io.RawIOBase, stop: threading.Event | None = None) -> io.BufferedReader:
    return io.BufferedReader(CountingReader(raw, stop), buffer_size=1 << 16)  # type: ignore[arg-type]


def test_a_number_that_runs_on_past_the_cap_is_one_rejection_then_a_clean_error() -> None:
    # `[1.` and 20 MB of zeros: one element, far past the 4 MiB cap, never closed.
    source = stream(Endless(b"[1.", b"0", total=20 * 1024 * 1024))
    items: list[Any] = []
    tracemalloc.start()
    with pytest.raises(SourceError, match="not closed"):
        items.extend(read_json_array(source))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(i.line, i.error) for i in items] == [
        (1, f"array element is longer than {MAX_LINE_BYTES} bytes")
    ]
    assert peak < 3 * MAX_LINE_BYTES  # never the whole number


def test_a_gzip_bomb_of_zeros_in_an_array_ends_in_linear_time() -> None:
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb") as gz:
        gz.write(b"[1.")
        block = b"0" * (1 << 20)
        for _ in range(64):  # 64 MB of zeros from about 64 KB of gzip
            gz.write(block)
    compressed.seek(0)
    source = gzip.GzipFile(fileobj=stream(compressed), mode="rb")  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="not closed"):
        list(read_json_array(source))  # type: ignore[arg-type]


def test_scanning_cost_grows_linearly_with_the_element() -> None:
    """A 32 MB number took 18 s (quadratic); the scanner's work is proportional to its size.

    Measured as CPU time (not wall time: a busy machine does not change it) of 2 MB
    against 16 MB in the same process: a quadratic reader takes 64 times longer on the
    larger one, a linear one about 8 times.
    """

    def cost(size: int) -> float:
        data = b"[" + b"1" * size + b"]"
        started = time.process_time()
        [item] = list(read_json_array(stream(Endless(data, b" ", total=len(data)))))
        assert (item.error is not None) == (size > MAX_LINE_BYTES)
        return time.process_time() - started

    small = min(cost(2 << 20) for _ in range(3))
    large = min(cost(16 << 20) for _ in range(3))
    assert large < 24 * max(small, 0.002)


def test_an_integer_past_pythons_digit_limit_is_a_rejection() -> None:
    text = b'[{"id": 1, "n": ' + b"7" * 5000 + b"}]"
    [item] = list(read_json_array(io.BytesIO(text)))
    assert item.text is not None
    with pytest.raises(records.RecordSyntaxError, match="more than 4300 digits"):
        records.loads(item.text)


def test_a_jsonl_line_without_an_end_is_one_rejection_held_in_bounded_memory() -> None:
    source = stream(Endless(b'{"a": 1}\n', b"a", total=24 * 1024 * 1024))
    tracemalloc.start()
    items = list(read_jsonl(source))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(i.line, i.error) for i in items] == [
        (1, None),
        (2, f"line is longer than {MAX_LINE_BYTES} bytes"),
    ]
    assert peak < 3 * MAX_LINE_BYTES


@pytest.mark.parametrize(
    "reader",
    [read_jsonl, read_json_array, read_csv],
    ids=["jsonl", "json", "csv"],
)
def test_a_stop_is_acted_on_within_a_second_whatever_the_input(reader: Any) -> None:
    """SIGINT while one endless line is read: the read ends at its next chunk."""
    head = {read_jsonl: b"", read_json_array: b"[1", read_csv: b"id\n"}[reader]
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(ReadInterrupted):
            list(reader(stream(Endless(head, b"0"), stop)))
    finally:
        timer.cancel()
    # The read ends at the next 64 KiB read after the stop; the bound leaves room for a
    # loaded machine's scheduling, and is still a world away from reading for ever.
    assert time.monotonic() - started < 0.3 + 3.0


# -- the scanner agrees with a JSON parser ---------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=15,
)
spaces = st.sampled_from(["", " ", "\n", "\r\n", "\t", "\r", " \n  "])


class Trickle(io.RawIOBase):
    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data[self.pos : self.pos + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def _line_of(text: str, offset: int) -> int:
    """1 + the line endings (\\r\\n, \\r, \\n) before ``offset``."""
    return 1 + len(re.findall(r"\r\n?|\n", text[:offset]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), values=st.lists(json_values, max_size=6), step=st.integers(1, 40))
def test_the_scanner_finds_every_element_and_its_line(
    data: st.DataObject, values: list[Any], step: int
) -> None:
    text = "["
    expected: list[tuple[int, str]] = []
    for index, value in enumerate(values):
        text += ("," if index else "") + data.draw(spaces)
        encoded = records.dumps(value)
        expected.append((_line_of(text, len(text)), encoded))
        text += encoded
    text += data.draw(spaces) + "]"
    raw = text.encode()
    items = list(read_json_array(io.BufferedReader(Trickle(raw, step), buffer_size=step)))
    assert [(i.line, i.text) for i in items] == expected
    assert [records.loads(i.text or "") for i in items] == [
        json.loads(v, parse_float=Decimal) for _, v in expected
    ]
