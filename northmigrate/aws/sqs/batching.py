"""Group messages into SendMessageBatch calls: at most 10 entries and at most the byte limit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

MAX_BATCH_ENTRIES = 10


class Sized(Protocol):
    @property
    def size(self) -> int: ...


T = TypeVar("T", bound=Sized)


class Batcher(Generic[T]):
    """Accumulates items; ``add`` returns a full batch when the next item would not fit.

    An item larger than ``max_bytes`` on its own still forms a batch of one (the caller
    rejects oversize items before they get here; SQS would refuse such a batch).
    """

    def __init__(self, max_bytes: int, max_entries: int = MAX_BATCH_ENTRIES) -> None:
        if not 1 <= max_entries <= MAX_BATCH_ENTRIES:
            raise ValueError("max_entries must be 1..10")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: list[T] = []
        self._bytes = 0

    def add(self, item: T) -> list[T] | None:
        full: list[T] | None = None
        if self._items and (
            len(self._items) >= self.max_entries or self._bytes + item.size > self.max_bytes
        ):
            full = self.flush()
        self._items.append(item)
        self._bytes += item.size
        return full

    def flush(self) -> list[T] | None:
        if not self._items:
            return None
        out, self._items, self._bytes = self._items, [], 0
        return out


def batches(
    items: Iterable[T], max_bytes: int, max_entries: int = MAX_BATCH_ENTRIES
) -> Iterator[list[T]]:
    batcher: Batcher[T] = Batcher(max_bytes, max_entries)
    for item in items:
        full = batcher.add(item)
        if full:
            yield full
    last = batcher.flush()
    if last:
        yield last
