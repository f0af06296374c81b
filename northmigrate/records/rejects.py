"""The rejects file: one JSON line per item that was not sent, with the original record.

It holds the original text of bad records, sensitive fields included (it is the operator's
own data, for fixing and re-sending), so it is opened through ``northmigrate.privatefile``:
mode 0600, and never through a link or anything else planted at its path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from northmigrate.errors import InputError
from northmigrate.privatefile import open_private
from northmigrate.records.item import SourceItem
from northmigrate.records.validation import Rejection


class RejectsWriter:
    """Writes rejects to ``path``: with ``append``, added at the end of what it holds (a
    resumed run); else an existing file is truncated first, or, with ``force`` False, one
    that is not empty is refused (an InputError): it is the audit of an earlier run.

    ``source``: the (device, inode) of the file the records are read from; the rejects
    file may not be that file, however it is spelled or linked (an InputError, before a
    byte is written or cut)."""

    def __init__(
        self,
        path: str | Path,
        *,
        append: bool = False,
        force: bool = True,
        source: tuple[int, int] | None = None,
        source_name: str = "the source",
    ) -> None:
        self.path = Path(path)
        # Opened without truncating; the size is read from the open file, so what is
        # refused is exactly what would have been lost.
        self._file: IO[str] = open_private(self.path, "rejects file", append=True)
        try:
            self._not_the_source(source, source_name)
            if not append:
                self._overwrite(force)
        except BaseException:
            self._file.close()
            raise
        self.count = 0

    def _not_the_source(self, source: tuple[int, int] | None, name: str) -> None:
        info = os.fstat(self._file.fileno())
        if source is not None and (info.st_dev, info.st_ino) == source:
            raise InputError(
                f"the rejects file {self.path} is the source {name} (the same file): "
                "writing rejects into it would destroy the records it holds",
                hint="choose another path for --rejects",
            )

    def _overwrite(self, force: bool) -> None:
        fd = self._file.fileno()
        if os.fstat(fd).st_size == 0:
            return
        if not force:
            raise InputError(
                f"the rejects file {self.path} already holds the rejects of an earlier run",
                hint="add --force to overwrite it, resume with --from-line N to add to it, "
                "or choose another file",
            )
        os.ftruncate(fd, 0)

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
