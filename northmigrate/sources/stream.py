"""Bytes in: a stream counted and stoppable, buffered, gunzipped, read by its format.

A ``CountingReader`` counts the bytes read through it (the progress of a file or an object)
and, given a ``stop`` event, raises :class:`ReadInterrupted` at its next read once the event
is set, so that a signal is acted on within one read of 64 KiB, whatever the input (a line
with no end, a gigabyte of zeros in one number). From a pipe, a FIFO or a terminal (stdin
fed by a slow writer) it hands over what has arrived, without waiting for 64 KiB, and waits
for more in slices of ``WAIT_SLICE_S``, so that the first signal stops even a read that
nothing feeds. The format of a file or an S3 object is
told by its name (``reader_for``); ``StreamSource`` is the source over one local stream.
"""

from __future__ import annotations

import gzip
import io
import os
import select
import stat
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


WAIT_SLICE_S = 0.2  # how long a read from a pipe waits before it looks at ``stop`` again


def _waitable(raw: IO[bytes]) -> int | None:
    """The descriptor of a stream whose reads can block (a pipe, a FIFO, a terminal, a
    socket), or None (a regular file, a stream in memory)."""
    try:
        fd = raw.fileno()
        return None if stat.S_ISREG(os.fstat(fd).st_mode) else fd
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
        return None


class CountingReader(io.RawIOBase):
    """Wraps a binary stream, counts the bytes read through it (for progress), and stops
    reading once ``stop`` is set (see the module docstring)."""

    def __init__(self, raw: IO[bytes], stop: threading.Event | None = None) -> None:
        self.raw = raw
        self.count = 0
        self.stop = stop
        self._fd = _waitable(raw)
        self.idle: Callable[[], None] | None = None
        # one read of what is there (a buffered stream's read(n) would wait for all n)
        self._read = getattr(raw, "read1", raw.read) if self._fd is not None else raw.read

    def readable(self) -> bool:
        return True

    def _stopped(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise ReadInterrupted("interrupted while reading the source")

    def _wait(self) -> None:
        """Until the stream has bytes (or its end) to give, or ``stop`` is set. When nothing
        is there at first, ``idle`` is called once (enqueue sends what it holds)."""
        slice_s = 0.0
        while self._fd is not None:
            self._stopped()
            try:
                ready, _, _ = select.select([self._fd], [], [], slice_s)
            except (OSError, ValueError):  # no select for this descriptor: read as it comes
                return
            if ready:
                return
            if not slice_s and self.idle is not None:
                self.idle()
            slice_s = WAIT_SLICE_S

    def readinto(self, buffer: Any) -> int:
        self._stopped()
        self._wait()
        self._stopped()
        data = self._read(len(buffer))
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

    def when_idle(self, idle: Callable[[], None]) -> None:
        """Call ``idle`` whenever the stream (a pipe) has nothing more for now."""
        self._counting.idle = idle

    def file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file read (stdin's too), or None when it has none."""
        try:
            info = os.fstat(self._counting.raw.fileno())
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
            return None
        return info.st_dev, info.st_ino

    def close(self) -> None:
        self._counting.close()
