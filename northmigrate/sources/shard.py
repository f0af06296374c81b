"""``--shard I/N``: which part of a source this process reads, so that N processes, each
given its own ``I`` (0-based), read the source exactly once between them.

How a source is cut (docs/sources.md says the same to users):

- a plain JSONL or CSV file or S3 object: by byte ranges, ``[size*I/N, size*(I+1)/N)``,
  each cut moved forward to the next line start (for CSV, the next line start outside a
  quoted cell), so a record spanning a cut belongs to the shard where its line starts
  (``northmigrate.sources.cuts``);
- an S3 prefix: the objects laid end to end, the same byte ranges over them: an object
  inside one shard's range is read whole by it, an object across a cut is split there;
- a ``.json`` array or a gzipped file or object (no seeking): when it is the whole source,
  every shard reads the stream and keeps the items whose position ``k`` (0-based) has
  ``k % N == I``; under a prefix of several objects, it is read whole by the shard where
  its first byte falls;
- a table: the scan's segments, segment ``s`` to shard ``s % N``;
- stdin: refused.

``--shard auto`` reads the index and the count from the engine that started the process
(``ENGINES``): AWS Batch array jobs, Kubernetes Indexed Jobs (the count from ``--shards N``)
and Cloud Run jobs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from northmigrate.sources.base import SourceError

MAX_SHARDS = 1_000_000
MAX_TOTAL_SEGMENTS = 1_000_000  # a table scan's TotalSegments, at most
SEGMENTS_PER_SHARD = 4  # a sharded scan's default: not by the table's size (see segments)
FORM = "I/N with 0 <= I < N (0-based), e.g. --shard 0/4, or --shard auto"
# (engine, its index variable, its count variable or None: the count comes from --shards)
ENGINES: tuple[tuple[str, str, str | None], ...] = (
    ("AWS Batch", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"),
    ("Kubernetes", "JOB_COMPLETION_INDEX", None),
    ("Cloud Run", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"),
)
_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    """Part ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count <= MAX_SHARDS:
            raise SourceError(f"shard {self.index}/{self.count} is out of range", hint=FORM)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def byte_range(self, total: int) -> tuple[int, int]:
        """This shard's part of ``total`` bytes: ``[start, end)``; the N parts tile it."""
        return total * self.index // self.count, total * (self.index + 1) // self.count

    def segments(self, total: int) -> list[int]:
        """The segments of a table scan in ``total`` that are this shard's: ``s % N == I``.

        Every shard must cut the table the same way, so a sharded scan's segment count never
        follows the table's size or item count (DynamoDB's are up to 6 hours old, and shards
        may start hours apart): ``--segments``, or ``default_segments``, never lowered."""
        return list(range(self.index, total, self.count))

    def default_segments(self) -> int:
        return min(MAX_TOTAL_SEGMENTS, SEGMENTS_PER_SHARD * self.count)

    def check_segments(self, segments: int | None) -> None:
        """Refuse a segment count that leaves some shards nothing to scan (exit 2)."""
        if segments is not None and segments < self.count:
            raise SourceError(
                f"--segments {segments} is fewer than the {self.count} shards: "
                "some shards would have nothing to scan",
                hint=f"give --segments {self.count} or more (the same on every shard)",
            )

    def keeps(self, position: int) -> bool:
        """Whether the item at ``position`` (0-based) of a stream read by every shard is this
        shard's."""
        return position % self.count == self.index


def parse_shard(text: str, *, shards: int | None = None, env: Mapping[str, str]) -> Shard:
    """The shard ``--shard`` names: ``I/N``, or ``auto`` (read from ``env``, the process's
    environment; ``shards`` is ``--shards N``). A bad form, an index out of range, no
    engine's variables with ``auto``: SourceError (exit 2) saying what is expected."""
    if text.strip().lower() == "auto":
        return _auto(shards, env)
    match = _FORM.fullmatch(text)
    if match is None:
        raise SourceError(f"--shard {text!r} is not a shard", hint=FORM)
    index, count = int(match[1]), int(match[2])
    if count == 0 or index >= count:
        raise SourceError(f"--shard {text!r} is out of range: I must be below N", hint=FORM)
    if shards is not None and shards != count:
        raise SourceError(f"--shard {text} says {count} shards, --shards says {shards}")
    return Shard(index, count)


def _number(env: Mapping[str, str], name: str) -> int:
    value = env[name].strip()
    if not value.isdigit():
        raise SourceError(f"--shard auto: {name}={env[name]!r} is not a whole number")
    return int(value)


def _auto(shards: int | None, env: Mapping[str, str]) -> Shard:
    found = [engine for engine in ENGINES if engine[1] in env]
    if not found:
        names = ", ".join(
            f"{index} and {count}" if count else f"{index} (with --shards N)"
            for _, index, count in ENGINES
        )
        raise SourceError(
            f"--shard auto found no shard in the environment: set {names}",
            hint="or give the shard itself: --shard I/N",
        )
    if len(found) > 1:
        both = " and ".join(index for _, index, _ in found)
        raise SourceError(
            f"--shard auto: {both} are both set; give the shard itself",
            hint="--shard I/N",
        )
    engine, index_name, count_name = found[0]
    index = _number(env, index_name)
    count = _number(env, count_name) if count_name and count_name in env else None
    if count is None and shards is None:
        wanted = f"{count_name} or --shards N" if count_name else "--shards N"
        raise SourceError(f"--shard auto on {engine}: the shard count is missing: give {wanted}")
    if count is not None and shards is not None and count != shards:
        raise SourceError(f"--shard auto: {count_name}={count} but --shards {shards}")
    total = count if count is not None else shards
    assert total is not None
    if not 0 <= index < total:
        raise SourceError(f"--shard auto: {index_name}={index} is not below the count {total}")
    return Shard(index, total)


__all__ = ["ENGINES", "FORM", "MAX_TOTAL_SEGMENTS", "Shard", "parse_shard"]
