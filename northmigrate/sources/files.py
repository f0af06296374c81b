"""Readers of JSONL, JSON-array and CSV streams of bytes.

Every reader is linear in the size of its input and bounded in memory: a line, an array
element or a CSV row longer than ``MAX_LINE_BYTES`` is one rejection (with its line number)
and is skipped without being held. A line ends at ``\n``, ``\r\n`` or a lone ``\r`` (old
Mac files), as Python's universal newlines do; line numbers count those endings. The
streams come from ``northmigrate.sources.stream`` (counted, stoppable, gunzipped).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from typing import IO, Any

from northmigrate import records
from northmigrate.sources.base import SourceError, SourceItem

# A line (or an array element) longer than this is rejected without holding all of it.
MAX_LINE_BYTES = 4 * 1024 * 1024
_CHUNK = 1 << 16
_BOM = codecs.BOM_UTF8
_EOL = re.compile(rb"\r\n?|\n")


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line ending), or None for a line over MAX_LINE_BYTES."""
    number = 0
    parts: list[bytes] = []
    size = 0
    too_long = False
    after_cr = False  # the last chunk ended with \r: a \n starting the next one ends nothing
    # read1: what has arrived (a pipe fed slowly gives its lines as they come, not 64 KiB)
    read = getattr(stream, "read1", stream.read)
    head = True
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        if head:  # a BOM may come in pieces from a pipe: gather the first 3 bytes
            while len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                more = read(_CHUNK)
                if not more:
                    break
                chunk += more
            head = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        pos = 1 if after_cr and chunk.startswith(b"\n") else 0
        after_cr = False
        for match in _EOL.finditer(chunk, pos):
            piece = chunk[pos : match.start()]
            pos = match.end()
            number += 1
            if too_long or size + len(piece) > MAX_LINE_BYTES:
                yield number, None
            elif parts:
                parts.append(piece)
                yield number, b"".join(parts)
            else:
                yield number, piece
            parts, size, too_long = [], 0, False
        if pos and chunk[pos - 1 : pos] == b"\r" and pos == len(chunk):
            after_cr = True
        rest = chunk[pos:]
        if rest and not too_long:
            if size + len(rest) > MAX_LINE_BYTES:
                parts, size, too_long = [], 0, True
            else:
                parts.append(rest)
                size += len(rest)
    if parts or too_long:
        yield number + 1, None if too_long else b"".join(parts)


def read_jsonl(stream: IO[bytes], origin: str | None = None) -> Iterator[SourceItem]:
    for number, raw in _lines(stream):
        if raw is None:
            yield SourceItem(
                number, error=f"line is longer than {MAX_LINE_BYTES} bytes", origin=origin
            )
            continue
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield SourceItem(
                number, error=f"line is not valid UTF-8 (byte {exc.start + 1})", origin=origin
            )
            continue
        yield SourceItem(number, text=text.strip(), origin=origin)


# The JSON array scanner: finds where each element ends without parsing it (the validator
# parses each element, with exact numbers), by jumping from one structural byte to the next.
# UTF-8 never has an ASCII byte inside a multi-byte character, so scanning bytes is safe.
_IN_CONTAINER = re.compile(rb'["\[\]{}]')
_IN_STRING = re.compile(rb'["\\]')
_SCALAR_END = re.compile(rb"[,\]\s]")
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")


class _ArrayScanner:
    """Splits a top-level JSON array into its elements' texts (see read_json_array)."""

    def __init__(self, stream: IO[bytes], origin: str | None) -> None:
        self.stream = stream
        self.origin = origin
        self.where = f"{origin + ' ' if origin else ''}line"
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.line = 1
        self._cr_at_end = False  # the last counted span ended with \r
        self._first = True
        # the element being read
        self.parts: list[bytes] = []
        self.size = 0
        self.too_long = False
        self.start = 0  # where the unsaved part of the element begins in buf

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if self._first:
            self._first = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        self.buf, self.pos, self.start = chunk, 0, 0
        self.eof = not chunk
        return bool(chunk)

    def _count_lines(self, start: int, end: int) -> None:
        if end <= start:
            return
        buf = self.buf
        n = buf.count(b"\n", start, end) + buf.count(b"\r", start, end)
        n -= buf.count(b"\r\n", start, end)
        if self._cr_at_end and buf[start : start + 1] == b"\n":
            n -= 1
        self._cr_at_end = buf[end - 1 : end] == b"\r"
        self.line += n

    def _skip_space(self) -> int:
        """The next byte that is not white space (-1 at the end of the input)."""
        while True:
            match = _NOT_SPACE.search(self.buf, self.pos)
            if match is not None:
                self._count_lines(self.pos, match.start())
                self.pos = match.start()
                return self.buf[self.pos]
            self._count_lines(self.pos, len(self.buf))
            if not self._fill():
                return -1

    def _save(self, end: int) -> None:
        """Keep buf[start:end] as part of the element (unless it is already too long)."""
        if not self.too_long and end > self.start:
            if self.size + end - self.start > MAX_LINE_BYTES:
                self.too_long, self.parts, self.size = True, [], 0
            else:
                self.parts.append(self.buf[self.start : end])
                self.size += end - self.start
        self._count_lines(self.start, end)
        self.start = end

    def _next_chunk(self) -> bool:
        self._save(len(self.buf))
        return self._fill()

    def _element(self) -> bytes | None:
        """The next element's bytes from ``pos`` (None when it is too long)."""
        self.parts, self.size, self.too_long, self.start = [], 0, False, self.pos
        first = self.buf[self.pos]
        if first not in b'"[{':
            while True:
                match = _SCALAR_END.search(self.buf, self.pos)
                if match is not None:
                    self.pos = match.start()
                    break
                if not self._next_chunk():
                    break
            return self._finish()
        depth = 0 if first == ord('"') else 1
        in_string = first == ord('"')
        self.pos += 1
        escaped = False
        while True:
            if escaped:  # the byte after a backslash that ended the last chunk
                if self.pos >= len(self.buf) and not self._next_chunk():
                    break
                self.pos += 1
                escaped = False
            pattern = _IN_STRING if in_string else _IN_CONTAINER
            match = pattern.search(self.buf, self.pos)
            if match is None:
                if not self._next_chunk():
                    break
                continue
            byte = self.buf[match.start()]
            self.pos = match.end()
            if byte == ord("\\"):
                if self.pos >= len(self.buf):
                    escaped = True
                else:
                    self.pos += 1
            elif byte == ord('"'):
                in_string = not in_string
                if not in_string and depth == 0:
                    break
            elif byte in b"[{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    break
        return self._finish()

    def _finish(self) -> bytes | None:
        self._save(self.pos)
        return None if self.too_long else b"".join(self.parts)

    def __iter__(self) -> Iterator[SourceItem]:
        self._fill()
        if self._skip_space() != ord("["):
            raise SourceError(
                f"{self.where} {self.line}: a .json source must hold one JSON array of records"
            )
        self.pos += 1
        first = True
        while True:
            byte = self._skip_space()
            if byte == ord("]"):
                return
            if byte < 0:
                raise SourceError(f"{self.where} {self.line}: the JSON array is not closed")
            if not first:
                if byte != ord(","):
                    raise SourceError(
                        f"{self.where} {self.line}: expected ',' or ']' in the JSON array"
                    )
                self.pos += 1
                byte = self._skip_space()
                if byte < 0 or byte == ord("]"):
                    raise SourceError(
                        f"{self.where} {self.line}: a value is missing after ',' in the array"
                    )
            first = False
            start_line = self.line
            raw = self._element()
            if raw is None:
                yield SourceItem(
                    start_line,
                    error=f"array element is longer than {MAX_LINE_BYTES} bytes",
                    origin=self.origin,
                )
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield SourceItem(
                    start_line,
                    error=f"array element is not valid UTF-8 (byte {exc.start + 1})",
                    origin=self.origin,
                )
                continue
            yield SourceItem(start_line, text=text, origin=self.origin)


def read_json_array(stream: IO[bytes], origin: str | None = None) -> Iterator[SourceItem]:
    """Stream the elements of a top-level JSON array, one item per element.

    Each element's own text is the item (the validator parses it, numbers exact); an
    element that is not valid JSON is one rejection with its line, and the reading goes on.
    Only an array whose structure is broken (no ``[``, no ``,`` between elements, never
    closed) stops the source with a SourceError, after the elements read before it.
    """
    yield from _ArrayScanner(stream, origin)


def _cell(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return records.loads(stripped)  # numbers exact, as anywhere else
        except records.RecordSyntaxError:
            return value
    return value


def _nest(header: list[str], row: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(header, row, strict=True):
        if value == "":
            continue  # an empty cell is an absent field
        node = out
        parts = name.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = _cell(value)
    return out


def _check_header(header: list[str], where: str) -> None:
    """Every cell of a row must land in a field of its own: no empty or repeated names, and
    no column that names a field another column nests under (``notes`` beside
    ``notes.extra``), which would drop one of the two cells without a word."""
    if "" in header:
        raise SourceError(f"{where}: the CSV header has an empty column name")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise SourceError(f"{where}: the CSV header repeats the column {name!r}")
        seen.add(name)
    for name in header:
        parts = name.split(".")
        if "" in parts:
            raise SourceError(f"{where}: the CSV column {name!r} has an empty part in its name")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            if prefix in seen:
                raise SourceError(
                    f"{where}: the CSV columns {prefix!r} and {name!r} both claim the field "
                    f"{prefix!r} (a value, and an object holding {parts[end]!r})",
                    hint="rename one of the two columns",
                )


def read_csv(stream: IO[bytes], origin: str | None = None) -> Iterator[SourceItem]:
    """A header row, then one record a row; dotted headers nest, JSON cells are parsed."""
    bad: list[tuple[int, str]] = []

    def decoded() -> Iterator[str]:
        for number, raw in _lines(stream):
            if raw is None:
                bad.append((number, f"line is longer than {MAX_LINE_BYTES} bytes"))
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8") + "\n"
            except UnicodeDecodeError as exc:
                bad.append((number, f"line is not valid UTF-8 (byte {exc.start + 1})"))
                yield "\n"

    reader = csv.reader(decoded(), strict=True)
    header: list[str] | None = None
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield SourceItem(end + 1, error=f"CSV error: {exc}", origin=origin)
            end = reader.line_num
            continue
        start, end = end + 1, reader.line_num
        while bad:
            number, reason = bad.pop(0)
            yield SourceItem(number, error=reason, origin=origin)
        if not row or all(cell == "" for cell in row):
            continue
        if header is None:
            header = [name.strip() for name in row]
            _check_header(header, f"{origin or 'source'} line {start}")
            continue
        if len(row) != len(header):
            yield SourceItem(
                start,
                error=f"row has {len(row)} columns, the header has {len(header)}",
                origin=origin,
            )
            continue
        yield SourceItem(start, data=_nest(header, row), origin=origin)
    for number, reason in bad:
        yield SourceItem(number, error=reason, origin=origin)
