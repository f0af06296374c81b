"""What a source yields for each record: its text or parsed value, and where it came from.

It belongs to the records room (validation and rejects read it); the sources make it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class SourceItem:
    """One record of a source, or one unreadable stretch of it.

    ``text`` is the record's JSON text when the source holds JSON (sent as is, saving a
    dump); ``data`` is the parsed value when the reader had to parse it (CSV, a JSON array,
    a table). ``error`` is set when the item could not be read at all.
    """

    line: int | None
    text: str | None = None
    data: Any = None
    error: str | None = None
    origin: str | None = None  # the S3 object key or the table key, where it applies
    token: Any = None  # the source's own bookkeeping (a table page, for resuming a scan)

    @property
    def position(self) -> str:
        parts = [self.origin] if self.origin else []
        if self.line is not None:
            parts.append(f"line {self.line}")
        return " ".join(parts) or "?"
