"""``dynamodb://TABLE``: a parallel scan of a table, each item as a plain record.

The segments of the scan (``Segment``/``TotalSegments``, up to DynamoDB's 1,000,000) are
scanned by a pool of at most ``SCAN_THREADS`` threads, one segment at a time each; the
others wait their turn. A ``--segments`` beyond what the table can use is lowered to it
(``usable_segments``: one per item and per MiB of table, never under ``MAX_SEGMENTS``), and
the source says so (``notice``). A ``stop`` event (the CLI's first Ctrl-C or SIGTERM) ends
the read within ``STOP_POLL_S``, whether items are coming or not, with ``ReadInterrupted``.
Items are handed over a bounded queue, so memory holds at most the
queue plus one page per thread. Pages are read, retried and checkpointed by
``northmigrate.sources.pages``: no page is ever skipped.

Items are deserialized with boto3's ``TypeDeserializer`` and made plain: numbers stay
``Decimal`` (exact; pydantic takes them for ``Decimal``, ``float`` and integral ``int``
fields), sets become sorted lists, binary values become base64 text. An item's position
is its key: ``dynamodb://TABLE pk=…,sk=…`` (a key attribute named in the migration's
``sensitive`` fields shows as ``***``).
"""

from __future__ import annotations

import base64
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import Binary, TypeDeserializer

from northmigrate.aws.clients import AWS_EXCEPTIONS, error_code, translate
from northmigrate.errors import InputError
from northmigrate.redact import MASK
from northmigrate.sources.base import SourceError, SourceItem
from northmigrate.sources.filters import build_filter, filter_identity
from northmigrate.sources.options import ScanOptions
from northmigrate.sources.pages import PageReader, Stopped
from northmigrate.sources.resume import PageToken, ScanCheckpoint, ScanState, state_path
from northmigrate.sources.stream import ReadInterrupted

if TYPE_CHECKING:
    from northmigrate.aws.clients import AwsClients


MAX_SEGMENTS = 32
SCAN_THREADS = 32  # segments scanned at once; more segments wait for a free thread
BYTES_PER_SEGMENT = 100 * 1024 * 1024
BYTES_PER_USABLE_SEGMENT = 1024 * 1024  # a Scan page: a smaller segment adds nothing
QUEUE_ITEMS = 1000  # items handed over between the scanning threads and the reader
STOP_POLL_S = 0.5  # how often the reader looks at the stop event while no item comes
JOIN_S = 1.0  # how long a stopping scan waits for its threads (daemons), all together, once
_DONE = object()


def default_segments(table_size_bytes: int) -> int:
    """One segment per 100 MiB of table, at least 1 and at most 32."""
    return min(MAX_SEGMENTS, max(1, math.ceil(table_size_bytes / BYTES_PER_SEGMENT)))


def usable_segments(item_count: int, table_size_bytes: int) -> int:
    """The most segments a scan of this table can put to work: no more than it has items
    or MiB (a segment with nothing in it is only a call, a state entry and memory), and
    never fewer than ``MAX_SEGMENTS`` (the counts DynamoDB gives are up to 6 hours old)."""
    pages = math.ceil(table_size_bytes / BYTES_PER_USABLE_SEGMENT)
    return max(MAX_SEGMENTS, min(item_count, pages))


def plain(value: Any) -> Any:
    """A deserialized DynamoDB value as plain data (Decimal kept, sets sorted, binary base64)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, Binary):
        raw: bytes = value.value  # type: ignore[attr-defined]
        return base64.b64encode(raw).decode("ascii")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class DynamoSource:
    """A parallel scan of one table; iterate it once. Use ``open_table`` to create one."""

    def __init__(
        self,
        ddb: Any,
        table: str,
        *,
        key_names: Sequence[str],
        item_count: int | None,
        state: ScanState,
        checkpoint: ScanCheckpoint | None,
        resumed: bool,
        scan_args: dict[str, Any],
        page_size: int | None = None,
        sensitive: Sequence[str] = (),
        sleep: Callable[[float], None] | None = None,
        max_attempts: int = 8,
        queue_items: int = QUEUE_ITEMS,
        stop: threading.Event | None = None,
        notice: str | None = None,
    ) -> None:
        self.name = f"dynamodb://{table}"
        self.notice = notice  # what the caller should be told (segments lowered)
        self._interrupt = stop
        self.table = table
        self.state = state
        self.checkpoint = checkpoint
        self.resumed = resumed
        self._key_names = list(key_names)
        self._hidden = set(sensitive)
        self._item_count = item_count
        self._stop = threading.Event()
        self._pages = PageReader(
            ddb,
            table,
            key_names=key_names,
            state=state,
            checkpoint=checkpoint,
            scan_args=scan_args,
            page_size=page_size,
            stop=self._stop,
            sleep=sleep or self._stop.wait,
            max_attempts=max_attempts,
        )
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_items)
        self._todo_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._deserializer = TypeDeserializer()

    @property
    def pages_read(self) -> int:
        return self._pages.pages_read

    @property
    def retries(self) -> int:
        """Scan calls retried after throttling or a dropped connection."""
        return self._pages.retries

    # -- the Source protocol --------------------------------------------------------------

    def __iter__(self) -> Iterator[SourceItem]:
        if self._started:
            raise SourceError(f"{self.name} can only be read once")
        self._started = True
        live = sum(not seg.done for seg in self.state.segments)  # each ends with _DONE
        todo = iter([n for n, seg in enumerate(self.state.segments) if not seg.done])
        for number in range(min(live, SCAN_THREADS)):
            thread = threading.Thread(
                target=self._run_segments, args=(todo,), name=f"nm-scan-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        try:
            while live:
                if self._interrupt is not None and self._interrupt.is_set():
                    raise ReadInterrupted("interrupted while scanning the table")
                try:
                    entry = self._queue.get(timeout=STOP_POLL_S)
                except queue.Empty:
                    continue
                if entry is _DONE:
                    live -= 1
                elif isinstance(entry, BaseException):
                    raise entry
                else:
                    yield entry
        finally:
            self._shutdown()

    def progress(self) -> tuple[int, int | None]:
        """(items scanned, the table's approximate item count)."""
        return self._pages.scanned, self._item_count

    def close(self) -> None:
        self._shutdown()

    @property
    def checkpointed(self) -> bool:
        """True when the scan records its progress (a state file, or a dry run's memory)."""
        return self.checkpoint is not None

    def settle(self, item: SourceItem, ok: bool) -> None:
        """The caller accounted for ``item`` (sent or rejected; ``ok`` False: not sent)."""
        if self.checkpoint is not None and isinstance(item.token, PageToken):
            self.checkpoint.settle(item.token, ok)

    def resume_info(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "segments": self.state.total_segments,
            "segments_done": sum(s.done for s in self.state.segments),
            "resumed": self.resumed,
            "state_file": str(cp.path) if cp is not None and cp.path is not None else None,
        }

    # -- the pool of scanning threads -----------------------------------------------------

    def _shutdown(self) -> None:
        self._stop.set()
        while True:  # unblock producers waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        deadline = time.monotonic() + JOIN_S  # a thread inside a Scan call ends with it
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _put(self, entry: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.2)
                return
            except queue.Full:
                continue
        raise Stopped

    def _run_segments(self, todo: Iterator[int]) -> None:
        """One thread of the pool: scan segments one after another until none is left."""
        while not self._stop.is_set():
            with self._todo_lock:
                segment = next(todo, None)
            if segment is None:
                return
            self._run_segment(segment)

    def _run_segment(self, segment: int) -> None:
        try:
            for items, token in self._pages.pages(segment):
                for raw in items:
                    self._put(self._item(raw, token))
            self._put(_DONE)
        except Stopped:
            return
        except BaseException as exc:  # handed to the reader, which raises it
            try:
                self._put(exc)
            except Stopped:
                return

    def _item(self, raw: dict[str, Any], token: PageToken | None) -> SourceItem:
        try:
            record = {k: plain(self._deserializer.deserialize(v)) for k, v in raw.items()}
        except Exception as exc:  # a value boto3 cannot read: report it, keep going
            origin = self._origin({k: raw.get(k, {}) for k in self._key_names})
            return SourceItem(
                None, error=f"cannot read the item: {exc}", origin=origin, token=token
            )
        return SourceItem(None, data=record, origin=self._origin(record), token=token)

    def _origin(self, record: dict[str, Any]) -> str:
        shown = ",".join(
            f"{name}={MASK if name in self._hidden else record.get(name)}"
            for name in self._key_names
        )
        return f"{self.name} {shown}"


def open_table(
    clients: AwsClients,
    table: str,
    options: ScanOptions | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
) -> DynamoSource:
    """Describe ``table`` and prepare its scan (nothing is read until iterated).

    With a state file (``options.state_file``, or the file for this table and queue under
    ``options.state_dir``), the scan's progress is recorded there (see
    northmigrate.sources.resume); with ``options.resume`` too, the scan starts from the
    positions recorded by an earlier run (from the start when there are none).
    ``options.save_state`` False reads a state, writes none.
    """
    options = options or ScanOptions()
    if options.segments is not None and not 1 <= options.segments <= 1_000_000:
        raise InputError("--segments must be between 1 and 1000000")
    if options.page_size is not None and options.page_size < 1:
        raise InputError("page_size must be at least 1")
    filter_text = filter_identity(options.filters, options.filter_values)
    scan_args = build_filter(options.filters, options.filter_values)
    ddb = clients.client("dynamodb")
    try:
        described = ddb.describe_table(TableName=table)["Table"]
    except AWS_EXCEPTIONS as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise SourceError(f"table {table} does not exist (dynamodb://{table})") from exc
        raise translate(exc, f"DynamoDB DescribeTable {table}") from exc
    hash_first = sorted(described.get("KeySchema", []), key=lambda k: k["KeyType"] != "HASH")
    key_names = [k["AttributeName"] for k in hash_first]
    state_file = options.state_file
    if state_file is None and options.state_dir is not None:
        state_file = state_path(table, options.queue_name, options.state_dir)
    size = int(described.get("TableSizeBytes", 0))
    usable = usable_segments(int(described.get("ItemCount", 0)), size)
    notice = None
    if options.segments is not None and options.segments > usable:
        notice = (
            f"--segments {options.segments} is more than table {table} can use: "
            f"scanning it in {usable} segments"
        )
    state = _resumed_state(table, options, state_file, filter_text, usable)
    resumed = state is not None
    if state is None:
        state = ScanState(
            table=table,
            queue=options.queue_name,
            total_segments=min(options.segments, usable)
            if options.segments
            else None or default_segments(size),
            filter=filter_text,
            consistent=options.consistent,
        )
    sensitive = [s for s in options.sensitive if "." not in s]
    state.sensitive = frozenset(key_names) & set(sensitive)
    checkpoint = None
    if state_file is not None:
        checkpoint = ScanCheckpoint(state, state_file if options.save_state else None)
        if not resumed:
            checkpoint.save()  # a fresh scan replaces the state of any earlier one
    item_count = described.get("ItemCount")
    return DynamoSource(
        ddb,
        table,
        key_names=key_names,
        item_count=int(item_count) if item_count is not None else None,
        state=state,
        checkpoint=checkpoint,
        resumed=resumed,
        scan_args=scan_args,
        page_size=options.page_size,
        sensitive=sensitive,
        sleep=sleep,
        stop=stop,
        notice=notice if not resumed else None,
    )


def _resumed_state(
    table: str,
    options: ScanOptions,
    state_file: Path | None,
    filter_text: str | None,
    usable: int,
) -> ScanState | None:
    """The recorded state a ``resume`` starts from (None: there is none, or no resume)."""
    if not options.resume:
        return None
    if state_file is None:
        raise InputError("--resume needs a place for the scan's state")
    state = ScanState.load(state_file)
    if state is None:
        return None
    if not state.same_filter(filter_text):
        raise InputError(
            f"the interrupted scan of {table} used another --filter (or "
            "--filter-values) than this run",
            hint=f"resume with the same filter, or delete {state_file} to start over",
        )
    asked = options.segments
    if asked is not None and state.total_segments not in (asked, min(asked, usable)):
        raise InputError(
            f"the interrupted scan of {table} used --segments {state.total_segments}",
            hint="resume with the same --segments (or none)",
        )
    state.consistent = options.consistent
    return state


__all__ = [
    "DynamoSource",
    "default_segments",
    "open_table",
    "plain",
    "usable_segments",
]
