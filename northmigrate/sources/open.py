"""Open a source by its name: a path, ``-`` for JSONL on stdin, or a URI."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from northmigrate.sources.base import Source, SourceError
from northmigrate.sources.files import read_jsonl
from northmigrate.sources.names import kind_of, table_uri
from northmigrate.sources.options import ScanOptions, check_options
from northmigrate.sources.shard import Shard
from northmigrate.sources.sharded import FileShard, Strided, splittable
from northmigrate.sources.stream import StreamSource, reader_for

if TYPE_CHECKING:
    from northmigrate.aws.clients import AwsClients


def open_source(
    name: str,
    *,
    clients: AwsClients | None = None,
    stop: threading.Event | None = None,
    options: ScanOptions | None = None,
    sleep: Callable[[float], None] | None = None,
    shard: Shard | None = None,
    from_object: str | None = None,
    listing: str | None = None,
) -> Source:
    """Open ``name`` for reading (nothing is read until iterated). Raises SourceError (exit 2)
    when it cannot be opened, or when ``options`` hold a flag that does not apply to it.

    ``clients`` (``northmigrate.aws.clients.AwsClients``) is needed for ``s3://`` and
    ``dynamodb://`` only. Once ``stop`` is set, reading a file, stdin or an S3 object raises
    ``ReadInterrupted`` (exit 130) at its next read, and a table scan within half a second,
    whether items are coming or not. ``sleep`` waits between retries (a test's seam).

    ``shard`` opens only that shard's part (``northmigrate.sources.shard``); stdin cannot
    be shared among shards (SourceError). ``from_object`` (a key of an S3 prefix) reads
    nothing of the objects before it (``--from-object``, resuming). ``listing`` (an S3
    source's digest, ``northmigrate.sources.s3.listing_digest``): a SourceError when the
    objects changed since it was taken.
    """
    options = options or ScanOptions()
    check_options(name, options)
    kind = kind_of(name)
    if kind == "stdin":
        if shard is not None:
            raise SourceError(
                "--shard cannot share stdin among shards: every shard would read its own copy",
                hint="write the records to a file, or to S3, and shard that",
            )
        return StreamSource(
            "<stdin>", sys.stdin.buffer, read_jsonl, total=None, gz=False, stop=stop
        )
    if kind == "file":
        return _open_file(name, stop, shard)
    if clients is None:
        raise SourceError(f"{name}: reading from AWS needs the AWS clients (clients=...)")
    if kind == "s3":
        from northmigrate.sources import s3

        return s3.open_s3(
            clients,
            name,
            stop=stop,
            shard=shard,
            from_object=from_object,
            listing=listing,
            **({"sleep": sleep} if sleep else {}),
        )
    from northmigrate.sources import dynamodb

    table, page_size = table_uri(name)
    if page_size is not None:
        options = dataclasses.replace(options, page_size=page_size)
    return dynamodb.open_table(clients, table, options, sleep=sleep, stop=stop, shard=shard)


def _open_file(name: str, stop: threading.Event | None, shard: Shard | None) -> Source:
    path = Path(name)
    reader, gz = reader_for(path.name)
    if not path.exists():
        raise SourceError(f"source {name} does not exist")
    if path.is_dir():
        raise SourceError(f"source {name} is a directory, not a file")
    if shard is not None and splittable(path.name):
        return FileShard(name, path, shard, stop)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot open source {name}: {exc.strerror or exc}") from exc
    whole = StreamSource(name, stream, reader, total=path.stat().st_size, gz=gz, stop=stop)
    return whole if shard is None else Strided(whole, shard)
