"""Where a shard's byte range of a JSONL or CSV file (or S3 object) really starts and ends.

A cut at byte ``p`` moves forward to the first *record boundary* at or after it: the start
of a line (after ``\\n``, ``\\r\\n`` or a lone ``\\r``, as the readers count lines), or the
end of the input. For CSV the boundary must also be outside a quoted cell: the count of
``"`` before it is even (a quoted cell doubles its quotes, so the parity tells). Two
neighbouring shards compute the same cut from the same bytes, so their windows tile the
input: a record spanning a cut belongs to the shard where its line starts.

A shard numbers its lines as the file does: the line endings before its window are counted
(``bytes.count`` over the bytes, nothing decoded or parsed; the one read of the input
outside the window that real line numbers cost). A CSV shard after the first takes the
header from the input's first record; no cut falls inside that header.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from northmigrate.sources.base import SourceError
from northmigrate.sources.files import check_header

# opens the raw bytes [start, end) of the input (end None: to its end)
Opener = Callable[[int, "int | None"], IO[bytes]]
_CHUNK = 1 << 20
_EOL = re.compile(rb"[\r\n]")
MAX_HEADER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Window:
    """The bytes ``[begin, stop)`` a shard parses; its first line's number; the CSV header
    (None: the window starts at byte 0 and reads the header itself, or it is not CSV)."""

    begin: int
    stop: int
    first_line: int = 1
    header: list[str] | None = None


class _Walker:
    """Reads an input forward from ``base``, counting line endings and quotes as it goes."""

    def __init__(self, stream: IO[bytes], base: int = 0, *, quotes: bool = False) -> None:
        self.stream = stream
        self.pos = base  # the absolute position of buf[0]
        self.buf = b""
        self.lines = 0  # line endings before pos
        self.quotes = 0  # '"' before pos (counted when ``quotes``)
        self.count_quotes = quotes
        self.after_cr = False  # the byte before pos is a \r (counted as a line ending)
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _consume(self, n: int) -> None:
        """Count and drop the first ``n`` bytes of buf."""
        part = self.buf[:n]
        lines = part.count(b"\n") + part.count(b"\r") - part.count(b"\r\n")
        if self.after_cr and part[:1] == b"\n":
            lines -= 1
        if part:
            self.after_cr = part[-1:] == b"\r"
        self.lines += lines
        if self.count_quotes:
            self.quotes += part.count(b'"')
        self.buf = self.buf[n:]
        self.pos += n

    def skip_to(self, target: int) -> None:
        """Count everything before ``target`` (or to the end of the input)."""
        while self.pos < target:
            if not self.buf and not self._more():
                return
            self._consume(min(len(self.buf), target - self.pos))

    def _line_end(self) -> bool:
        """Consume up to the end of the next line ending; False at the end of the input."""
        if self.after_cr and (self.buf or self._more()) and self.buf[:1] == b"\n":
            self._consume(1)  # the \n of a \r\n whose \r was counted
            return True
        while True:
            match = _EOL.search(self.buf)
            if match is None:
                self._consume(len(self.buf))
                if not self._more():
                    return False
                continue
            end = match.end()
            if self.buf[match.start() : end] == b"\r":
                while end == len(self.buf) and self._more():
                    pass  # one byte more tells a \r\n from a lone \r
                if self.buf[end : end + 1] == b"\n":
                    end += 1
            self._consume(end)
            return True

    def boundary(self, at: int) -> int:
        """The first record boundary at or after ``at`` (pos must be at most ``at - 1``)."""
        self.skip_to(at - 1)
        while self._line_end():
            if self.pos >= at and not (self.count_quotes and self.quotes % 2):
                return self.pos
        return self.pos  # the end of the input


def _header(opener: Opener, where: str) -> tuple[list[str] | None, int]:
    """The CSV header (the first record that is not blank, as ``read_csv`` takes it) and
    the byte after it; (None, end of input) when the input holds no header."""
    stream = opener(0, None)
    try:
        head = _read_up_to(stream, MAX_HEADER_BYTES + 1)
    finally:
        stream.close()
    start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    walker = _Walker(io.BytesIO(head), quotes=True)
    walker.skip_to(start)
    while start < len(head):
        end = walker.boundary(start + 1)
        if end > MAX_HEADER_BYTES:
            break
        try:
            text = head[start:end].decode("utf-8")
        except UnicodeDecodeError:
            text = ""  # read_csv reports the line, and takes the header from a later one
        try:
            rows = list(csv.reader([text], strict=True))
        except csv.Error:
            rows = []  # read_csv reports the record, and takes the header from a later one
        row = rows[0] if len(rows) == 1 else []
        if row and any(cell != "" for cell in row):
            header = [name.strip() for name in row]
            check_header(header, f"{where} line {_lines_in(head[:start]) + 1}")
            return header, end
        start = end
    if len(head) > MAX_HEADER_BYTES:
        raise SourceError(f"{where}: no CSV header within the first {MAX_HEADER_BYTES} bytes")
    return None, len(head)


def _read_up_to(stream: IO[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _lines_in(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def window(
    opener: Opener, size: int, start: int, end: int, *, csv_header: bool, where: str
) -> Window:
    """The window of the byte range ``[start, end)`` of an input of ``size`` bytes (see the
    module docstring). ``csv_header``: the input is CSV (its quotes count, and a window
    after the first takes the header)."""
    header: list[str] | None = None
    header_end = 0
    if csv_header and (start > 0 or end < size):
        header, header_end = _header(opener, where)
    if start <= 0:
        begin, first_line = 0, 1
    else:
        walker = _Walker(opener(0, None), quotes=csv_header)
        try:
            begin = max(walker.boundary(start), header_end)
            walker.skip_to(begin)
            first_line = walker.lines + 1
            stop = _stop(walker, opener, size, end, begin, csv_header, header_end)
        finally:
            walker.stream.close()
        return Window(begin, stop, first_line, header)
    stop = size if end >= size else _stop(None, opener, size, end, 0, csv_header, header_end)
    return Window(begin, stop, first_line, None)


def _stop(
    walker: _Walker | None,
    opener: Opener,
    size: int,
    end: int,
    begin: int,
    csv_header: bool,
    header_end: int,
) -> int:
    """Where a window that begins at ``begin`` stops: the boundary at ``end``."""
    if end >= size:
        return size
    if begin >= end:
        return begin  # the line at the cut runs past the range: nothing of it is ours
    if csv_header:  # the quotes from the input's start tell where a cell ends
        if walker is None:
            walker = _Walker(opener(0, None), quotes=True)
            try:
                return max(walker.boundary(end), header_end)
            finally:
                walker.stream.close()
        return max(walker.boundary(end), header_end)
    stream = opener(end - 1, None)  # a line ending is found from the byte before the cut
    try:
        return _Walker(stream, end - 1).boundary(end)
    finally:
        stream.close()


__all__ = ["Opener", "Window", "window"]
