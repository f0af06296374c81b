"""The rejects file: one JSON line per item that was not sent, with the original record.

It holds the original text of bad records, sensitive fields included (it is the operator's
own data, for fixing and re-sending), so it is opened through ``northmigrate.privatefile``:
mode 0600, and never through a link or anything else planted at its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import IO

from northmigrate.privatefile import open_private
from northmigrate.sources import SourceItem
from northmigrate.validation import Rejection


class RejectsWriter:
    """Writes rejects to ``path`` (truncated first, or with ``append`` added at its end)."""

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self._file: IO[str] = open_private(self.path, "rejects file", append=append)
        self.count = 0

    def write(self, rejection: Rejection, item: SourceItem | None, raw: str | None = None) -> None:
        entry = rejection.to_dict()
        if raw is None and item is not None:
            if item.text is not None:
                raw = item.text
            elif item.data is not None:
                raw = json.dumps(item.data, ensure_ascii=False, default=str)
        entry["raw"] = raw
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
