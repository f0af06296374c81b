from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.aws.sqs.batching import MAX_BATCH_ENTRIES, batches


@dataclass(frozen=True)
class Item:
    ident: int
    size: int


@given(
    sizes=st.lists(st.integers(1, 70_000), max_size=200),
    limit=st.integers(70_000, 262_144),
)
@settings(max_examples=300, deadline=None)
def test_batches_respect_both_limits_and_keep_every_item_once_in_order(
    sizes: list[int], limit: int
) -> None:
    items = [Item(n, size) for n, size in enumerate(sizes)]
    out = list(batches(items, limit))
    assert [i for batch in out for i in batch] == items  # none dropped, none twice, same order
    for batch in out:
        assert 1 <= len(batch) <= MAX_BATCH_ENTRIES
        assert sum(i.size for i in batch) <= limit
