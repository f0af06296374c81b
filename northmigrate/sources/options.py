"""How to read a source: the options of a table scan and of its resume state, in one value.

``ScanOptions`` is built once (by the CLI from its flags, or by a caller) and handed to
``open_source``. Its options apply to ``dynamodb://`` sources only; ``check_options`` is the
one place that knows which flag applies to which kind of source, and refuses a flag given
for a source it does not apply to (exit 2) before anything is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from northmigrate.sources.base import SourceError
from northmigrate.sources.names import is_s3_prefix, kind_of


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """The options of a table scan (a file or an S3 source takes none of the first six).

    - ``segments`` (parallel scan segments, default one per 100 MiB), ``consistent``
      (strongly consistent reads), ``filters`` (``--filter`` texts), ``filter_values``
      (their placeholders' values, JSON), ``page_size`` (Scan ``Limit``; also
      ``?page_size=N`` on the URI, which wins), ``resume`` (start from the recorded state);
    - where the scan's progress is recorded: ``state_file``, or ``state_dir`` for the file
      named after the table and ``queue_name`` there (``sources.resume.state_path``); none:
      nothing is recorded. ``save_state`` False reads a state and writes none (a dry run);
    - ``queue_name`` (recorded in the state) and ``sensitive`` (the migration's sensitive
      fields: a key attribute among them is masked in positions, saved only as a digest).
    """

    segments: int | None = None
    consistent: bool = False
    filters: tuple[str, ...] = ()
    filter_values: str | None = None
    page_size: int | None = None
    resume: bool = False
    state_file: Path | None = None
    state_dir: Path | None = None
    save_state: bool = True
    queue_name: str = ""
    sensitive: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # a list given for a tuple (a caller's --filter list) is kept as a tuple: frozen
        object.__setattr__(self, "filters", tuple(self.filters))
        object.__setattr__(self, "sensitive", tuple(self.sensitive))
        if self.state_file is not None and self.state_dir is not None:
            raise ValueError("ScanOptions takes a state_file or a state_dir, not both")

    def table_flags(self) -> list[str]:
        """The flags given that apply to tables only (``resume`` apart), in the CLI's order."""
        given = {
            "--segments": self.segments is not None,
            "--consistent": self.consistent,
            "--filter": bool(self.filters),
            "--filter-values": bool(self.filter_values),
            "page_size": self.page_size is not None,
        }
        return [flag for flag, on in given.items() if on]


def check_options(
    name: str,
    options: ScanOptions,
    *,
    from_line: int | None = None,
    from_object: str | None = None,
    sharded: bool = False,
    listing: str | None = None,
) -> None:
    """Refuse a flag given for a source it does not apply to (SourceError, exit 2).

    ``from_line`` is enqueue's ``--from-line``: it applies to one file or one S3 object, or
    to an S3 prefix with ``from_object`` (``--from-object KEY``, a prefix's only).
    ``sharded`` (``--shard``) applies to any source but stdin; ``listing`` (``--listing``) to
    S3 sources only.
    """
    kind = kind_of(name)
    if listing is not None and kind != "s3":
        raise SourceError(
            f"--listing applies to s3:// sources, not to {name}",
            hint="it is the digest of an S3 source's objects (the JSON summary's listing)",
        )
    if sharded and kind == "stdin":
        raise SourceError(
            "--shard cannot share stdin among shards: every shard would read its own copy",
            hint="write the records to a file, or to S3, and shard that",
        )
    table = kind == "dynamodb"
    if not table:
        misplaced = options.table_flags()
        if misplaced:
            raise SourceError(f"{misplaced[0]} applies to dynamodb:// sources, not to {name}")
        if options.resume:
            raise SourceError(
                f"--resume applies to dynamodb:// sources, not to {name}", hint="use --from-line N"
            )
    prefix = is_s3_prefix(name)
    if from_object is not None and not prefix:
        raise SourceError(
            f"--from-object applies to an S3 prefix (s3://BUCKET/PREFIX/), not to {name}",
            hint="for one file or object, --from-line N is enough",
        )
    if from_line is not None and (table or (prefix and from_object is None)):
        raise SourceError(
            f"--from-line applies to one file or object, not to {name}",
            hint="for a table, use --resume"
            if table
            else "for a prefix, give the object too: --from-object KEY --from-line N",
        )
