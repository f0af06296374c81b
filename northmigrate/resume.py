"""Resumable table scans: where each segment of a parallel scan has safely got to.

A scan reads each segment page by page. ``ScanCheckpoint`` counts the items of every page
as the caller settles them (sent and confirmed, or rejected by validation); a segment's
position moves past a page only when that page *and every page before it* are settled, so
a crash at any moment leaves a position from which nothing is skipped (items after it may
be sent again: at-least-once). A page whose send failed holds its segment back for the
rest of the run.

The state lives in a small JSON file (by default ``./.northmigrate/resume/``, one file per
table and queue), replaced atomically on every move. Deleting the file resets the scan.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from northmigrate.envelope import iso, utc_now
from northmigrate.errors import InputError

STATE_DIR = Path(".northmigrate") / "resume"
VERSION = 1
WireKey = dict[str, dict[str, Any]]


def state_path(table: str, queue: str, base: Path | None = None) -> Path:
    """The state file of scans of ``table`` sent to ``queue``."""

    def safe(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name)

    return (base or STATE_DIR) / f"dynamodb-{safe(table)}--{safe(queue)}.json"


def key_to_json(key: WireKey | None) -> dict[str, Any] | None:
    """A DynamoDB key (wire form, as the low-level client gives it) as JSON-safe data."""
    if key is None:
        return None
    out: dict[str, Any] = {}
    for name, value in key.items():
        if "B" in value:
            raw = value["B"]
            out[name] = {"B64": base64.b64encode(bytes(raw)).decode("ascii")}
        else:
            out[name] = dict(value)
    return out


def key_from_json(data: dict[str, Any] | None) -> WireKey | None:
    if data is None:
        return None
    out: WireKey = {}
    for name, value in data.items():
        if "B64" in value:
            out[name] = {"B": base64.b64decode(value["B64"])}
        else:
            out[name] = dict(value)
    return out


@dataclass
class SegmentState:
    start_key: WireKey | None = None  # ExclusiveStartKey of the next page to read
    done: bool = False
    scanned: int = 0  # items scanned (ScannedCount) up to start_key, for progress


@dataclass
class ScanState:
    """The committed position of every segment of one scan."""

    table: str
    queue: str
    total_segments: int
    filter: str | None = None
    consistent: bool = False
    segments: list[SegmentState] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.segments:
            self.segments = [SegmentState() for _ in range(self.total_segments)]

    @property
    def finished(self) -> bool:
        return all(s.done for s in self.segments)

    @property
    def scanned(self) -> int:
        return sum(s.scanned for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "table": self.table,
            "queue": self.queue,
            "total_segments": self.total_segments,
            "filter": self.filter,
            "consistent": self.consistent,
            "finished": self.finished,
            "updated_at": iso(utc_now()),
            "segments": [
                {
                    "segment": n,
                    "done": s.done,
                    "scanned": s.scanned,
                    "start_key": key_to_json(s.start_key),
                }
                for n, s in enumerate(self.segments)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanState:
        segments = [
            SegmentState(
                start_key=key_from_json(s.get("start_key")),
                done=bool(s["done"]),
                scanned=int(s.get("scanned", 0)),
            )
            for s in data["segments"]
        ]
        state = cls(
            table=str(data["table"]),
            queue=str(data["queue"]),
            total_segments=int(data["total_segments"]),
            filter=data.get("filter"),
            consistent=bool(data.get("consistent", False)),
            segments=segments,
        )
        if len(segments) != state.total_segments:
            raise ValueError("segment count does not match total_segments")
        return state

    @classmethod
    def load(cls, path: Path) -> ScanState | None:
        """The saved state, or None when there is none. A damaged file is an InputError."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"cannot read resume state {path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
            if data.get("version") != VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            return cls.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(
                f"resume state {path} is damaged ({exc})",
                hint="delete it to scan the table from the start",
            ) from exc

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old file or the new one, never half of one)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"cannot write resume state {path}: {exc.strerror or exc}") from exc


@dataclass
class _Page:
    remaining: int
    last_key: WireKey | None
    scanned: int
    failed: bool = False


@dataclass(frozen=True, slots=True)
class PageToken:
    """Which page of which segment an item came from (carried by the item)."""

    segment: int
    page: int


class ScanCheckpoint:
    """Moves each segment's saved position as the items of its pages are settled.

    Thread-safe: pages are registered by the scanning threads, items settled by the
    sending threads. ``path`` None keeps the state in memory only (a dry run).
    """

    def __init__(self, state: ScanState, path: Path | None) -> None:
        self.state = state
        self.path = path
        self._lock = threading.Lock()
        self._pages: dict[int, dict[int, _Page]] = {n: {} for n in range(state.total_segments)}
        self._next: dict[int, int] = dict.fromkeys(range(state.total_segments), 0)
        self.saves = 0

    def page_read(
        self, segment: int, page: int, count: int, last_key: WireKey | None, scanned: int
    ) -> PageToken:
        """Register a page before any of its ``count`` items is handed out."""
        with self._lock:
            self._pages[segment][page] = _Page(count, last_key, scanned)
            self._advance(segment)
        return PageToken(segment, page)

    def settle(self, token: PageToken, ok: bool) -> None:
        """One item of the page is accounted for: ``ok`` False when it could not be sent."""
        with self._lock:
            entry = self._pages[token.segment].get(token.page)
            if entry is None:  # pragma: no cover - settled twice: a caller bug
                return
            entry.remaining -= 1
            if not ok:
                entry.failed = True
            self._advance(token.segment)

    def save(self) -> None:
        with self._lock:
            self._save_locked()

    def _advance(self, segment: int) -> None:
        pages = self._pages[segment]
        seg = self.state.segments[segment]
        moved = False
        while True:
            number = self._next[segment]
            entry = pages.get(number)
            if entry is None or entry.remaining > 0 or entry.failed:
                break
            del pages[number]
            self._next[segment] = number + 1
            seg.scanned += entry.scanned
            seg.start_key = entry.last_key
            seg.done = entry.last_key is None
            moved = True
        if moved:
            self._save_locked()

    def _save_locked(self) -> None:
        if self.path is not None:
            self.state.save(self.path)
            self.saves += 1
