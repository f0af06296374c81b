"""What a source's name points at: ``-`` (JSONL on stdin), a file, an S3 URI, a table URI.

The kind of a name is told by its form alone, before anything is opened; the URIs are
parsed here too, so that nothing else reads a source's name apart.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl

from northmigrate.sources.base import SourceError

Kind = Literal["stdin", "file", "s3", "dynamodb"]


def kind_of(name: str) -> Kind:
    if name == "-":
        return "stdin"
    if name.startswith("s3://"):
        return "s3"
    if name.startswith("dynamodb://"):
        return "dynamodb"
    return "file"


def is_s3_prefix(name: str) -> bool:
    """``s3://BUCKET/PREFIX/``: every object under the prefix, not one object."""
    return name.startswith("s3://") and name.endswith("/")


def s3_uri(name: str) -> tuple[str, str]:
    """(bucket, key or prefix) of an ``s3://`` URI."""
    rest = name[len("s3://") :]
    bucket, slash, key = rest.partition("/")
    if not bucket or not slash:
        raise SourceError(
            f"{name}: name an object or a prefix",
            hint="s3://BUCKET/KEY, or s3://BUCKET/PREFIX/ for every object under it",
        )
    return bucket, key


def table_uri(name: str) -> tuple[str, int | None]:
    """(table, page size or None) of ``dynamodb://TABLE`` (``?page_size=N`` optional)."""
    rest = name[len("dynamodb://") :]
    table, _, query = rest.partition("?")
    if not table or "/" in table:
        raise SourceError(f"{name}: expected dynamodb://TABLE", hint="a table name, no path")
    try:
        params = dict(parse_qsl(query, strict_parsing=True)) if query else {}
    except ValueError as exc:
        raise SourceError(f"{name}: cannot read the query ({exc})") from exc
    unknown = set(params) - {"page_size"}
    if unknown:
        raise SourceError(f"{name}: unknown parameter {sorted(unknown)[0]!r}", hint="page_size=N")
    if "page_size" not in params:
        return table, None
    try:
        return table, int(params["page_size"])
    except ValueError as exc:
        raise SourceError(f"{name}: page_size must be a whole number") from exc
