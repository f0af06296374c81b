"""Readers of JSONL, JSON-array and CSV streams of bytes."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from typing import IO, Any

from northmigrate.sources.base import SourceError, SourceItem

# A line longer than this is rejected without holding all of it in memory.
MAX_LINE_BYTES = 4 * 1024 * 1024
_CHUNK = 1 << 16
_BOM = codecs.BOM_UTF8


class CountingReader(io.RawIOBase):
    """Wraps a binary stream and counts the bytes read through it (for progress)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the newline), or None for a line over MAX_LINE_BYTES."""
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):  # skip the rest of the line
                chunk = stream.readline(_CHUNK)
            yield number, None
            continue
        if number == 1 and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM) :]
        yield number, chunk.rstrip(b"\r\n")


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


def read_json_array(stream: IO[bytes], origin: str | None = None) -> Iterator[SourceItem]:
    """Stream the elements of a top-level JSON array, one item per element."""
    decoder = json.JSONDecoder()
    incremental = codecs.getincrementaldecoder("utf-8-sig")()
    buf = ""
    pos = 0
    line = 1
    eof = False

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = stream.read(_CHUNK)
        try:
            text = incremental.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{origin or 'source'}: not valid UTF-8 near line {line}") from exc
        eof = not chunk
        buf = buf[pos:] + text
        pos = 0
        return bool(text) or not eof

    def skip_ws() -> str:
        nonlocal pos, line
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not fill():
                return ""

    where = f"{origin + ' ' if origin else ''}line"
    if skip_ws() != "[":
        raise SourceError(f"{where} {line}: a .json source must hold one JSON array of records")
    pos += 1
    first = True
    while True:
        char = skip_ws()
        if char == "]":
            return
        if not char:
            raise SourceError(f"{where} {line}: the JSON array is not closed")
        if not first:
            if char != ",":
                raise SourceError(f"{where} {line}: expected ',' or ']' in the JSON array")
            pos += 1
            if not skip_ws():
                raise SourceError(f"{where} {line}: the JSON array is not closed")
        first = False
        start_line = line
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                # The element may continue in the next chunk; past MAX_LINE_BYTES it is broken.
                if not eof and len(buf) - pos <= MAX_LINE_BYTES and fill():
                    continue
                raise SourceError(
                    f"{where} {start_line}: invalid JSON in the array ({exc.msg}); "
                    "the rest of the file was not read"
                ) from exc
            except RecursionError as exc:
                raise SourceError(f"{where} {start_line}: JSON nested too deeply") from exc
            if end == len(buf) and not eof and fill():
                continue  # a number may go on in the next chunk
            break
        text = buf[pos:end]
        line += text.count("\n")
        pos = end
        yield SourceItem(start_line, text=text, data=value, origin=origin)


def _cell(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
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
            if len(set(header)) != len(header) or "" in header:
                raise SourceError(
                    f"{origin or 'source'} line {start}: "
                    "the CSV header has empty or repeated column names"
                )
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
