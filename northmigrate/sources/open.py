"""Open a source by its name: a path, ``-`` for JSONL on stdin, or a URI."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from northmigrate.sources.base import Source, SourceError
from northmigrate.sources.files import read_jsonl
from northmigrate.sources.stream import StreamSource, reader_for


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
