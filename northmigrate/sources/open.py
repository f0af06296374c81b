"""Open a source by its name: a path, ``-`` for JSONL on stdin, or a URI."""

from __future__ import annotations

import gzip
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from northmigrate.sources.base import Source, SourceError, SourceItem
from northmigrate.sources.files import CountingReader, read_csv, read_json_array, read_jsonl

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


class StreamSource:
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

    def close(self) -> None:
        self._counting.close()


def open_buffered(raw: Any) -> IO[bytes]:
    import io

    return io.BufferedReader(raw, buffer_size=1 << 16)


def open_source(
    name: str, *, clients: Any = None, stop: threading.Event | None = None, **options: Any
) -> Source:
    """Open ``name`` for reading. Raises SourceError (exit 2) when it cannot be opened.

    Once ``stop`` is set, reading raises ``ReadInterrupted`` (exit 130) at its next read.
    """
    if name == "-":
        return StreamSource(
            "<stdin>", sys.stdin.buffer, read_jsonl, total=None, gz=False, stop=stop
        )
    if name.startswith(("s3://", "dynamodb://")):
        from northmigrate.sources import remote

        return remote.open_remote(name, clients=clients, stop=stop, **options)
    path = Path(name)
    reader, gz = reader_for(path.name)
    if not path.exists():
        raise SourceError(f"source {name} does not exist")
    if path.is_dir():
        raise SourceError(f"source {name} is a directory, not a file")
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot open source {name}: {exc.strerror or exc}") from exc
    return StreamSource(name, stream, reader, total=path.stat().st_size, gz=gz, stop=stop)
