"""``inspect --export FILE``: every dead letter as one JSON line, in a file only its owner reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from northmigrate.errors import InputError


class ExportWriter:
    """A JSONL file created (or truncated) with mode 0600 before anything is written to it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
        except OSError as exc:
            raise InputError(
                f"cannot write export file {self.path}: {exc.strerror or exc}"
            ) from exc
        self._file: IO[str] = os.fdopen(fd, "w", encoding="utf-8")
        self.count = 0

    def write(self, entry: dict[str, Any]) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
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
