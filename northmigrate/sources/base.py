"""What every source yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from northmigrate.errors import InputError
from northmigrate.records.item import SourceItem

__all__ = ["NoCheckpoint", "Source", "SourceError", "SourceItem"]


class SourceError(InputError):
    """A source that cannot be opened or read any further (exit 2)."""


class Source(Protocol):
    """An opened source: iterate it once for its items.

    ``settle`` and ``resume_info`` serve a source that keeps a resume state (a table scan
    with a state file, ``checkpointed`` True); every other source has them too, doing
    nothing (see ``NoCheckpoint``), so no caller needs to ask which kind it holds.
    """

    name: str

    def __iter__(self) -> Iterator[SourceItem]: ...

    def progress(self) -> tuple[int, int | None]:
        """(done, total) in the source's own unit (bytes of a file, items of a table)."""
        ...

    def close(self) -> None: ...

    @property
    def checkpointed(self) -> bool:
        """Whether ``settle`` records anything. When False, a caller may skip settling."""
        ...

    def settle(self, item: SourceItem, ok: bool) -> None:
        """``item`` is accounted for: sent and confirmed by SQS, or rejected (``ok`` True),
        or not sent (``ok`` False: a failed send holds the resume position back)."""
        ...

    def resume_info(self) -> dict[str, Any] | None:
        """How a later run resumes this one (``scan`` in enqueue's summary), or None: the
        source keeps no resume state (a file or an object resumes with ``--from-line``)."""
        ...


class NoCheckpoint:
    """``settle`` and ``resume_info`` of a source that keeps no resume state: a file, stdin,
    an S3 object or prefix."""

    checkpointed: bool = False

    def settle(self, item: SourceItem, ok: bool) -> None:
        """Nothing to record."""

    def resume_info(self) -> dict[str, Any] | None:
        return None
