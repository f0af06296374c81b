"""Resumable table scans: where each segment of a parallel scan has safely got to.

A scan reads each segment page by page. ``ScanCheckpoint`` counts the items of every page
as the caller settles them (sent and confirmed, or rejected by validation); a segment's
position moves past a page only when that page *and every page before it* are settled, so
a crash at any moment leaves a position from which nothing is skipped (items after it may
be sent again: at-least-once). A page whose send failed holds its segment back for the
rest of the run.

The state lives in a small JSON file (by default ``./.northmigrate/resume/``, one file per
table and queue), replaced atomically on every move. Deleting the file resets the scan.
The directory is mode 0700 and the file 0600, and neither is ever reached through a link
planted at its name (``northmigrate.privatefile``).

What the file never holds in clear:

- a position whose key has a sensitive attribute (one the migration lists in
  ``Migration.sensitive``, an SSN used as a table key, say). It is saved as a digest: an
  HMAC-SHA256 of the key under a secret *resume key* and a random salt of the file. On
  resume, the segment's keys are read again from its start (keys only, no filter) until
  one has that digest, and the scan goes on after it; when none has it (the item was
  deleted), the whole segment is sent again: an item is never skipped unless it is proven
  sent. A plain or salted hash would not do: the few billion possible SSNs are hashed in
  minutes, so anyone holding the file could read the keys back. The HMAC cannot be
  computed without the resume key.
- the ``--filter`` text and ``--filter-values`` (a filter may name a person): saved as a
  digest made the same way, enough to refuse a resume with another filter.

The resume key (``northmigrate.sources.resume_key``) is never in the state file: the state
alone (a copied workspace, a file attached to a ticket) reveals nothing. A state written
with another key (on another machine, say) is refused with a message that says so; copy
the key file, or delete the state to start over.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from northmigrate.errors import InputError
from northmigrate.privatefile import check_dirs, private_dir, read_private, replace_private
from northmigrate.records.envelope import iso, utc_now
from northmigrate.sources.resume_key import ResumeKey, key_file

STATE_DIR = Path(".northmigrate") / "resume"
VERSION = 2  # 1: positions and the filter in clear (still read; rewritten as 2)
WireKey = dict[str, dict[str, Any]]
ReadPage = Callable[[WireKey | None], dict[str, Any]]


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


def _canonical(key: WireKey) -> bytes:
    return json.dumps(key_to_json(key), sort_keys=True, separators=(",", ":")).encode()


@dataclass
class SegmentState:
    start_key: WireKey | None = None  # ExclusiveStartKey of the next page to read
    done: bool = False
    scanned: int = 0  # items scanned (ScannedCount) up to start_key, for progress
    start_digest: str | None = None  # the position, when it was saved as a digest


@dataclass
class ScanState:
    """The committed position of every segment of one scan.

    ``filter`` is this run's filter (``filter_identity``), kept in memory only; ``sensitive``
    names the key attributes whose values are never saved; ``key`` is the resume key (the
    user's, loaded when first needed, when None).
    """

    table: str
    queue: str
    total_segments: int
    filter: str | None = None
    consistent: bool = False
    segments: list[SegmentState] = field(default_factory=list)
    sensitive: frozenset[str] = frozenset()
    filter_digest: str | None = None  # the saved scan's filter, as read back
    key_id: str | None = None  # the resume key the saved digests were made with
    salt: bytes = field(default_factory=lambda: os.urandom(16), repr=False)
    key: ResumeKey | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments:
            self.segments = [SegmentState() for _ in range(self.total_segments)]

    @property
    def finished(self) -> bool:
        return all(s.done for s in self.segments)

    @property
    def scanned(self) -> int:
        return sum(s.scanned for s in self.segments)

    # -- digests ----------------------------------------------------------------------------

    def _key(self) -> ResumeKey:
        if self.key is None:
            self.key = ResumeKey.load()
        return self.key

    def position_digest(self, key: WireKey) -> str:
        return self._key().digest("position", self.salt, _canonical(key))

    def _filter_digest(self, text: str) -> str:
        return self._key().digest("filter", self.salt, text.encode())

    def same_filter(self, text: str | None) -> bool:
        """Whether a run with the filter ``text`` (``filter_identity``) may resume this scan."""
        if self.filter is not None or self.filter_digest is None:
            return self.filter == text
        return text is not None and hmac.compare_digest(
            self._filter_digest(text), self.filter_digest
        )

    def locate(self, segment: int, read_page: ReadPage) -> WireKey | None:
        """The key a segment resumes after (None: from its start).

        A position saved in clear is that key. One saved as a digest is looked for in the
        segment's keys, read again from its start with ``read_page(start_key)`` (a Scan of
        the segment's keys, no filter, from ``start_key``): the first key with that digest,
        an item's or a page's ``LastEvaluatedKey``. None when no key has it: the item was
        deleted, and the whole segment is read again (nothing unproven is skipped).
        """
        seg = self.segments[segment]
        if seg.start_digest is None:
            return seg.start_key
        start: WireKey | None = None
        while True:
            page = read_page(start)
            last: WireKey | None = page.get("LastEvaluatedKey")
            for key in [*page.get("Items", []), *([last] if last else [])]:
                if hmac.compare_digest(self.position_digest(key), seg.start_digest):
                    return dict(key)
            if not last:
                return None
            start = last

    # -- the file -----------------------------------------------------------------------------

    def _saved_position(self, seg: SegmentState) -> tuple[dict[str, Any] | None, str | None]:
        """(key in clear, digest) of a segment's position as it is written."""
        if seg.start_key is None:
            return None, seg.start_digest
        if self.sensitive & seg.start_key.keys():
            return None, self.position_digest(seg.start_key)
        return key_to_json(seg.start_key), None

    def to_json(self) -> dict[str, Any]:
        segments = []
        for n, s in enumerate(self.segments):
            clear, digest = self._saved_position(s)
            segments.append(
                {
                    "segment": n,
                    "done": s.done,
                    "scanned": s.scanned,
                    "start_key": clear,
                    "start_digest": digest,
                }
            )
        filter_digest = (
            self._filter_digest(self.filter) if self.filter is not None else self.filter_digest
        )
        keyed = filter_digest is not None or any(s["start_digest"] for s in segments)
        return {
            "version": VERSION,
            "table": self.table,
            "queue": self.queue,
            "total_segments": self.total_segments,
            "filter_digest": filter_digest,
            "key_id": self._key().key_id if keyed else None,
            "salt": self.salt.hex(),
            "consistent": self.consistent,
            "finished": self.finished,
            "updated_at": iso(utc_now()),
            "segments": segments,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanState:
        version = data.get("version")
        if version not in (1, VERSION):
            raise ValueError(f"unknown version {version!r}")
        segments = [
            SegmentState(
                start_key=key_from_json(s.get("start_key")),
                done=bool(s["done"]),
                scanned=int(s.get("scanned", 0)),
                start_digest=str(s["start_digest"]) if s.get("start_digest") else None,
            )
            for s in data["segments"]
        ]
        state = cls(
            table=str(data["table"]),
            queue=str(data["queue"]),
            total_segments=int(data["total_segments"]),
            filter=data.get("filter") if version == 1 else None,
            consistent=bool(data.get("consistent", False)),
            segments=segments,
            filter_digest=data.get("filter_digest"),
            key_id=data.get("key_id"),
        )
        if "salt" in data:
            state.salt = bytes.fromhex(str(data["salt"]))
        if len(segments) != state.total_segments:
            raise ValueError("segment count does not match total_segments")
        return state

    @classmethod
    def load(cls, path: Path, *, key: ResumeKey | None = None) -> ScanState | None:
        """The saved state, or None when there is none. A damaged file is an InputError, and
        so is one whose digests were made with another resume key than ``key`` (by default
        the user's)."""
        check_dirs(path.parent, "resume state directory")  # no link on the way to it
        raw = read_private(path, "resume state")
        if raw is None:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
            state = cls.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(
                f"resume state {path} is damaged ({exc})",
                hint="delete it to scan the table from the start",
            ) from exc
        if state.key_id is not None:
            key = key or ResumeKey.find()
            if key is None or key.key_id != state.key_id:
                raise InputError(
                    f"resume state {path} was written with another resume key than {key_file()}",
                    hint="copy the resume key from where the scan ran, or delete the "
                    "state to scan the table from the start",
                )
        state.key = key
        return state

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old file or the new one, never half of one),
        mode 0600 in a 0700 directory."""
        text = json.dumps(self.to_json(), indent=1) + "\n"
        private_dir(path.parent, "resume state directory")
        replace_private(path, text.encode("utf-8"), "resume state")


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
            seg.start_digest = None  # a position in clear now (saved as a digest if need be)
            seg.done = entry.last_key is None
            moved = True
        if moved:
            self._save_locked()

    def _save_locked(self) -> None:
        if self.path is not None:
            self.state.save(self.path)
            self.saves += 1
