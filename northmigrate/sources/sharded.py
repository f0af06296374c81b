"""A shard's part of a file or of the objects of an S3 source (the rules are in
``northmigrate.sources.shard``; the cuts in ``northmigrate.sources.cuts``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from northmigrate.sources.base import NoCheckpoint, Source, SourceError, SourceItem
from northmigrate.sources.cuts import Opener, window
from northmigrate.sources.files import read_csv, read_json_array, read_jsonl
from northmigrate.sources.shard import Shard
from northmigrate.sources.stream import CountingReader, Reader, open_buffered, reader_for


def splittable(name: str) -> bool:
    """Whether a file or an object can be cut by byte range: plain JSONL or CSV."""
    reader, gz = reader_for(name)
    return not gz and reader is not read_json_array


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of the ``index``-th input: the byte range ``[start, end)`` before the cuts move
    to record boundaries (``whole``: all of it, no cut to look for)."""

    index: int
    start: int
    end: int
    whole: bool


def plan(sizes: list[int], cuttable: list[bool], shard: Shard) -> list[Piece]:
    """The pieces of inputs laid end to end (an S3 prefix's objects in key order) that are
    ``shard``'s: its byte range of the whole, an input that cannot be cut going whole to the
    shard where its first byte falls."""
    low, high = shard.byte_range(sum(sizes))
    pieces: list[Piece] = []
    offset = 0
    for index, (size, cut) in enumerate(zip(sizes, cuttable, strict=True)):
        start, end = max(low, offset) - offset, min(high, offset + size) - offset
        if cut and start < end:
            pieces.append(Piece(index, start, end, start == 0 and end == size))
        elif not cut and low <= offset < high:
            pieces.append(Piece(index, 0, size, True))
        offset += size
    return pieces


class Strided:
    """A source read whole by every shard, of which this shard keeps every N-th item: a
    ``.json`` array or a gzipped input, which cannot be cut by byte range."""

    def __init__(self, source: Source, shard: Shard) -> None:
        self.source = source
        self.shard = shard
        self.name = source.name

    def __iter__(self) -> Iterator[SourceItem]:
        keeps = self.shard.keeps
        for position, item in enumerate(self.source):
            if keeps(position):
                yield item

    def progress(self) -> tuple[int, int | None]:
        return self.source.progress()

    def close(self) -> None:
        self.source.close()

    @property
    def checkpointed(self) -> bool:
        return self.source.checkpointed

    def settle(self, item: SourceItem, ok: bool) -> None:
        self.source.settle(item, ok)

    def resume_info(self) -> dict[str, Any] | None:
        return self.source.resume_info()

    def file_identity(self) -> tuple[int, int] | None:
        """The file's (device, inode) when the stream is a file's (see StreamSource)."""
        inner = getattr(self.source, "file_identity", None)
        return inner() if callable(inner) else None


def read_window(
    opener: Opener,
    size: int,
    piece: Piece,
    name: str,
    *,
    origin: str | None,
    stop: threading.Event | None,
    counted: Callable[[CountingReader | None], None],
) -> Iterator[SourceItem]:
    """The items of one piece of a plain JSONL or CSV input, numbered as the input numbers
    its lines. ``counted`` is told the reader that counts the piece's bytes (progress)."""
    reader, _ = reader_for(name)
    is_csv = reader is read_csv
    where = origin or name
    if piece.whole:
        cut = window(opener, size, 0, size, csv_header=False, where=where)
    else:
        cut = window(opener, size, piece.start, piece.end, csv_header=is_csv, where=where)
    if cut.stop <= cut.begin:
        return
    counting = CountingReader(opener(cut.begin, cut.stop), stop)
    counted(counting)
    stream: IO[bytes] = open_buffered(counting)
    read: Reader = (
        partial(read_csv, first_line=cut.first_line, header=cut.header)
        if is_csv
        else partial(read_jsonl, first_line=cut.first_line)
    )
    try:
        yield from read(stream, origin)
    except (OSError, EOFError) as exc:
        raise SourceError(f"cannot read {where}: {exc}") from exc
    finally:
        counted(None)
        counting.close()


class _Range:
    """The raw bytes ``[start, end)`` of a local file."""

    def __init__(self, path: Path, start: int, end: int | None) -> None:
        self._file = path.open("rb")
        self._file.seek(start)
        self._left = None if end is None else max(0, end - start)

    def read(self, n: int = -1) -> bytes:
        if self._left is not None:
            n = self._left if n < 0 else min(n, self._left)
        data = self._file.read(n)
        if self._left is not None:
            self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


def file_opener(path: Path) -> Opener:
    def opener(start: int, end: int | None) -> IO[bytes]:
        return _Range(path, start, end)  # type: ignore[return-value]

    return opener


class FileShard(NoCheckpoint):
    """A shard's window of a plain JSONL or CSV file."""

    def __init__(self, name: str, path: Path, shard: Shard, stop: threading.Event | None):
        self.name = name
        self._path = path
        self._size = path.stat().st_size
        start, end = shard.byte_range(self._size)
        self._piece = Piece(0, start, end, start == 0 and end == self._size)
        self._stop = stop
        self._counting: CountingReader | None = None
        self._done = 0

    def _counted(self, counting: CountingReader | None) -> None:
        if counting is None and self._counting is not None:
            self._done = self._counting.count
        self._counting = counting

    def __iter__(self) -> Iterator[SourceItem]:
        try:
            yield from read_window(
                file_opener(self._path),
                self._size,
                self._piece,
                self._path.name,
                origin=None,
                stop=self._stop,
                counted=self._counted,
            )
        except OSError as exc:
            raise SourceError(f"cannot read {self.name}: {exc.strerror or exc}") from exc

    def file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file (a rejects file must not be it)."""
        info = self._path.stat()
        return info.st_dev, info.st_ino

    def progress(self) -> tuple[int, int | None]:
        done = self._counting.count if self._counting is not None else self._done
        return done, self._piece.end - self._piece.start

    def close(self) -> None:
        if self._counting is not None:
            self._counting.close()


__all__ = ["FileShard", "Piece", "Strided", "file_opener", "plan", "read_window", "splittable"]
