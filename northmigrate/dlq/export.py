"""``inspect --export FILE``: every dead letter as one JSON line, in a file only its owner reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from northmigrate import records
from northmigrate.privatefile import open_private


class ExportWriter:
    """A JSONL file created (or truncated) with mode 0600 before anything is written to it,
    never through a link or anything else planted at its path (``northmigrate.privatefile``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] = open_private(self.path, "export file")
        self.count = 0

    def write(self, entry: dict[str, Any]) -> None:
        try:
            line = records.dumps(entry)  # numbers exact, as in the message
        except records.RecordSyntaxError:
            line = json.dumps(entry, ensure_ascii=False, default=str)
        self._file.write(line + "\n")
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
