"""Bytes in: a stream counted and stoppable, buffered, gunzipped, read by its format.

A ``CountingReader`` counts the bytes read through it (the progress of a file or an object)
and, given a ``stop`` event, raises :class:`ReadInterrupted` at its next read once the event
is set, so that a signal is acted on within one read of 64 KiB, whatever the input (a line
with no end, a gigabyte of zeros in one number). The format of a file or an S3 object is
told by its name (``reader_for``); ``StreamSource`` is the source over one local stream.
"""

from __future__ import annotations

import gzip
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from northmigrate.errors import Interrupted
from northmigrate.sources.base import NoCheckpoint, SourceError, SourceItem
from northmigrate.sources.files import read_csv, read_json_array, read_jsonl

Reader = Callable[[IO[bytes], "str | None"], Iterator[SourceItem]]
FORMATS: dict[str, Reader] = {
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".json": read_json_array,
    ".csv": read_csv,
}
SUPPORTED = (
    ".jsonl, .ndjson, .json, .csv (each optionally .gz), -, dynamodb://TABLE, s3://BUCKET/KEY"
)


class ReadInterrupted(Interrupted):
    """Reading stopped because the user asked the command to stop (exit 130)."""


class CountingReader(io.RawIOBase):
    """Wraps a binary stream, counts the bytes read through it (for progress), and stops
    reading once ``stop`` is set (see the module docstring)."""

    def __init__(self, raw: IO[bytes], stop: threading.Event | None = None) -> None:
        self.raw = raw
        self.count = 0
        self.stop = stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.stop is not None and self.stop.is_set():
            raise ReadInterrupted("interrupted while reading the source")
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def reader_for(name: str) -> tuple[Reader, bool]:
    """The reader for a file or object name by its extension, and whether it is gzipped."""
    lowered = name.lower()
    gz = lowered.endswith(".gz")
    if gz:
        lowered = lowered[:-3]
    for suffix, reader in FORMATS.items():
        if lowered.endswith(suffix):
            return reader, gz
    raise SourceError(f"cannot tell the format of {name}", hint=f"supported: {SUPPORTED}")


def open_buffered(raw: Any) -> IO[bytes]:
    return io.BufferedReader(raw, buffer_size=1 << 16)


class StreamSource(NoCheckpoint):
    """A source over one binary stream (a file or stdin)."""

    def __init__(
        self,
        name: str,
        stream: IO[bytes],
        reader: Reader,
        *,
        total: int | None,
        gz: bool,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = name
        self._counting = CountingReader(stream, stop)
        self._reader = reader
        self._total = total
        self._gz = gz

    def __iter__(self) -> Iterator[SourceItem]:
        buffered: IO[bytes] = open_buffered(self._counting)
        if self._gz:
            buffered = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
        try:
            yield from self._reader(buffered, None)
        except (OSError, EOFError) as exc:
            raise SourceError(f"cannot read {self.name}: {exc}") from exc

    def progress(self) -> tuple[int, int | None]:
        return self._counting.count, self._total

    def file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file read (stdin's too), or None when it has none."""
        try:
            info = os.fstat(self._counting.raw.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            return None
        return info.st_dev, info.st_ino

    def close(self) -> None:
        self._counting.close()
