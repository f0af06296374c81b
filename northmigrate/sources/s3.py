"""``s3://BUCKET/KEY`` (one object) and ``s3://BUCKET/PREFIX/`` (every object under it).

Objects are streamed: ``GetObject``'s body is read in 64 KiB chunks through the same
readers as local files (by extension: ``.jsonl``/``.ndjson``, ``.json``, ``.csv``, each
optionally ``.gz``), never held whole. A connection that drops part-way is picked up with a
ranged ``GetObject`` from the byte reached (``If-Match`` on the ETag, so a changed object is
an error, never a mix of two versions). Every item's origin is ``s3://BUCKET/KEY``, and its
line number is the line within that object.

A prefix is listed first (for the total and to fail before reading anything): objects are
read in key order; "directory" placeholders (keys ending in ``/``) and empty objects are
skipped; a non-empty object whose format cannot be told from its name stops the run before
anything is read (nothing under the prefix is ignored silently).

A listing has a digest (:func:`listing_digest`: every object's key, size and ETag). Shards
that run at different times (a fan-out's children, their retries, a resumed fan-out) cut the
same listing only if nothing under the prefix changed in between; given the digest the run
started with (``listing=``), opening a source whose objects changed is an error.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import botocore.exceptions

from northmigrate.aws.clients import AWS_EXCEPTIONS, error_code, translate
from northmigrate.errors import AwsError
from northmigrate.sources.base import NoCheckpoint, Source, SourceError, SourceItem
from northmigrate.sources.cuts import Opener
from northmigrate.sources.names import s3_uri
from northmigrate.sources.shard import Shard
from northmigrate.sources.sharded import Piece, Strided, plan, read_window, splittable
from northmigrate.sources.stream import CountingReader, Reader, open_buffered, reader_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from northmigrate.aws.clients import AwsClients


_MISSING = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_STREAM_ERRORS = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)
MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class S3Object:
    key: str
    size: int
    etag: str = ""


def listing_digest(objects: list[S3Object]) -> str:
    """What the objects are: their keys, sizes and ETags, in order (a short hex digest)."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(f"{obj.key}\0{obj.size}\0{obj.etag}\n".encode())
    return digest.hexdigest()[:32]


class ObjectStream(io.RawIOBase):
    """The bytes of one object, read from GetObject's body; resumes with a ranged GET."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        *,
        size: int | None = None,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        start: int = 0,
        end: int | None = None,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.size = size if end is None else end  # where reading stops
        self.offset = start
        self.ranged = start > 0 or end is not None  # a shard's part of the object
        self.etag: str | None = None
        self.reopened = 0
        self._attempts = attempts
        self._sleep = sleep
        self._body: Any = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.offset or self.ranged:
            last = str(self.size - 1) if self.ranged and self.size is not None else ""
            kwargs["Range"] = f"bytes={self.offset}-{last}"
        if self.etag:
            kwargs["IfMatch"] = self.etag
        try:
            response = self.s3.get_object(**kwargs)
        except AWS_EXCEPTIONS as exc:
            code = error_code(exc)
            if code in _MISSING:
                raise SourceError(f"{self.uri} does not exist") from exc
            if code in _NO_BUCKET:
                raise SourceError(f"bucket {self.bucket} does not exist ({self.uri})") from exc
            if code in {"PreconditionFailed", "412"}:
                raise SourceError(
                    f"{self.uri} changed while it was being read",
                    hint="read it again once it is no longer being written",
                ) from exc
            raise translate(exc, f"S3 GetObject {self.uri}") from exc
        self.etag = response.get("ETag") or self.etag
        if not self.offset and not self.ranged:  # its length now, whatever a listing said
            self.size = int(response.get("ContentLength", 0))
        self._body = response["Body"]

    def readinto(self, buffer: Any) -> int:
        if self.size is not None and self.offset >= self.size:
            return 0
        attempt = 0
        while True:
            try:
                if self._body is None:
                    self._open()
                data: bytes = self._body.read(len(buffer))
                break
            except _STREAM_ERRORS as exc:
                attempt += 1
                self._drop_body()
                if attempt >= self._attempts:
                    raise AwsError(
                        f"S3 GetObject {self.uri}: the connection kept failing at byte "
                        f"{self.offset} ({exc})"
                    ) from exc
                self.reopened += 1
                self._sleep(min(5.0, 0.2 * 2**attempt))
        n = len(data)
        buffer[:n] = data
        self.offset += n
        return n

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                body.close()

    def close(self) -> None:
        self._drop_body()
        super().close()


class S3Source(NoCheckpoint):
    """One object, or the objects under a prefix in key order, as one stream of items."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        objects: list[S3Object],
        *,
        name: str,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        pieces: list[Piece] | None = None,
    ) -> None:
        self.name = name
        self._stop = stop
        self.bucket = bucket
        self.objects = objects
        self._s3 = s3
        self._sleep = sleep
        self._done_bytes = 0
        self._current: CountingReader | None = None
        self.pieces = pieces  # a shard's pieces of the objects (None: all of every one)
        self.listing = listing_digest(objects)
        chosen = pieces or [Piece(n, 0, o.size, True) for n, o in enumerate(objects)]
        self._total = sum(p.end - p.start for p in chosen)

    def __iter__(self) -> Iterator[SourceItem]:
        if self.pieces is None:
            for obj in self.objects:
                reader, gz = reader_for(obj.key)
                yield from self._read(obj, reader, gz)
            return
        for piece in self.pieces:
            obj = self.objects[piece.index]
            if not splittable(obj.key):
                reader, gz = reader_for(obj.key)
                yield from self._read(obj, reader, gz)
                continue
            yield from read_window(
                self._opener(obj),
                obj.size,
                piece,
                obj.key,
                origin=f"s3://{self.bucket}/{obj.key}",
                stop=self._stop,
                counted=self._counted,
            )

    def skip_before(self, key: str) -> None:
        """Read nothing of the objects whose key sorts before ``key`` (a resumed run)."""
        first = key.encode("utf-8")
        chosen = self.pieces or [Piece(n, 0, o.size, True) for n, o in enumerate(self.objects)]
        self.cut([p for p in chosen if self.objects[p.index].key.encode("utf-8") >= first])

    def cut(self, pieces: list[Piece]) -> None:
        """Read only ``pieces`` of the objects (a shard's part)."""
        self.pieces = pieces
        self._total = sum(p.end - p.start for p in pieces)

    def _opener(self, obj: S3Object) -> Opener:
        def opener(start: int, end: int | None) -> IO[bytes]:
            raw = ObjectStream(
                self._s3,
                self.bucket,
                obj.key,
                size=obj.size,
                sleep=self._sleep,
                start=start,
                end=end,
            )
            return raw  # type: ignore[return-value]

        return opener

    def _counted(self, counting: CountingReader | None) -> None:
        if counting is None and self._current is not None:
            self._done_bytes += self._current.count
        self._current = counting

    def _read(self, obj: S3Object, reader: Reader, gz: bool) -> Iterator[SourceItem]:
        origin = f"s3://{self.bucket}/{obj.key}"
        raw = ObjectStream(self._s3, self.bucket, obj.key, size=obj.size, sleep=self._sleep)
        counting = self._current = CountingReader(raw, self._stop)  # type: ignore[arg-type]
        stream: IO[bytes] = open_buffered(counting)
        if gz:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        try:
            yield from reader(stream, origin)
        except (OSError, EOFError) as exc:
            raise SourceError(f"cannot read {origin}: {exc}") from exc
        finally:
            self._done_bytes += counting.count
            self._current = None
            counting.close()

    def progress(self) -> tuple[int, int | None]:
        current = self._current.count if self._current is not None else 0
        return self._done_bytes + current, self._total

    def close(self) -> None:
        if self._current is not None:
            self._current.close()


def list_objects(s3: S3Client, bucket: str, prefix: str) -> list[S3Object]:
    """The readable objects under ``prefix``, in key order (see the module's rules)."""
    uri = f"s3://{bucket}/{prefix}"
    found: list[S3Object] = []
    unknown: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                key, size = str(entry["Key"]), int(entry.get("Size", 0))
                if key.endswith("/") or size == 0:
                    continue
                try:
                    reader_for(key)
                except SourceError:
                    unknown.append(key)
                    continue
                found.append(S3Object(key, size, str(entry.get("ETag", ""))))
    except AWS_EXCEPTIONS as exc:
        if error_code(exc) in _NO_BUCKET:
            raise SourceError(f"bucket {bucket} does not exist ({uri})") from exc
        raise translate(exc, f"S3 ListObjectsV2 {uri}") from exc
    if unknown:
        shown = ", ".join(unknown[:MAX_LISTED]) + (" …" if len(unknown) > MAX_LISTED else "")
        raise SourceError(
            f"{uri} holds {len(unknown)} objects of unknown format: {shown}",
            hint="name them .jsonl, .ndjson, .json or .csv (optionally .gz), "
            "or point at a narrower prefix",
        )
    if not found:
        raise SourceError(f"no records to read under {uri}: no non-empty objects")
    found.sort(key=lambda o: o.key.encode("utf-8"))
    return found


def open_s3(
    clients: AwsClients,
    name: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    shard: Shard | None = None,
    from_object: str | None = None,
    listing: str | None = None,
) -> Source:
    """One object or a prefix; with ``shard``, only that shard's part of it; with
    ``from_object`` (a prefix's), nothing of the objects before that key; with ``listing``
    (a digest), a SourceError unless the objects are still those the digest was taken of."""
    bucket, key = s3_uri(name)
    s3 = clients.client("s3")
    if key == "" or key.endswith("/"):
        objects = list_objects(s3, bucket, key)
        source = S3Source(s3, bucket, objects, name=name, sleep=sleep, stop=stop)
        _same_listing(source, listing)
        sharded = _sharded(source, shard)
        if from_object is not None:
            source.skip_before(from_object)  # after the cut: every shard cuts the same way
        return sharded
    reader_for(key)  # an unknown format fails before any request
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except AWS_EXCEPTIONS as exc:
        code = error_code(exc)
        if code in _MISSING | _NO_BUCKET:
            raise SourceError(f"{name} does not exist") from exc
        raise translate(exc, f"S3 HeadObject {name}") from exc
    obj = S3Object(key, int(head.get("ContentLength", 0)), str(head.get("ETag", "")))
    source = S3Source(s3, bucket, [obj], name=name, sleep=sleep, stop=stop)
    _same_listing(source, listing)
    return _sharded(source, shard)


def listing_of(source: Source) -> str | None:
    """The listing digest of an opened S3 source, sharded or not (None for any other)."""
    inner = source.source if isinstance(source, Strided) else source
    return inner.listing if isinstance(inner, S3Source) else None


def _same_listing(source: S3Source, listing: str | None) -> None:
    if listing is not None and source.listing != listing:
        raise SourceError(
            f"the objects of {source.name} changed since the run started (an object was "
            "added, removed or rewritten): its shards would be cut differently",
            hint="start a new run over the source as it is now, without --listing (a record "
            "sent twice is harmless: the consumers are idempotent)",
        )


def _sharded(source: S3Source, shard: Shard | None) -> Source:
    """``source`` cut for ``shard`` (``northmigrate.sources.shard``): one object that cannot
    be cut is read by every shard, each keeping every N-th item."""
    if shard is None:
        return source
    objects = source.objects
    cuttable = [splittable(o.key) for o in objects]
    if len(objects) == 1 and not cuttable[0]:
        return Strided(source, shard)
    source.cut(plan([o.size for o in objects], cuttable, shard))
    return source
