"""Who reads the main queue: a local worker's heartbeat on the queue, and enabled mappings.

A running local worker tags the main queue ``northmigrate:worker-seen`` with the time, when
it starts and every ``SEEN_EVERY_S`` (60 s); a worker seen within ``SEEN_WITHIN_S`` (3 min)
reads the queue. An enabled event source mapping reads it too (Lambda). A command that
waits for a consumer (``dlq redrive --canary``) asks :func:`readers` first, and says at once
when nothing reads the queue, instead of waiting in silence.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import aws_errors
from northmigrate.consume.tap import Tap, TapState, read_tags
from northmigrate.errors import NorthmigrateError
from northmigrate.records.envelope import iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

TAG_WORKER_SEEN = "northmigrate:worker-seen"
SEEN_EVERY_S = 60.0
SEEN_WITHIN_S = 180.0


def mark_seen(sqs: SQSClient, url: str, now: datetime | None = None) -> None:
    """This worker reads the queue now (best effort: a failure is not the worker's)."""
    with contextlib.suppress(NorthmigrateError), aws_errors("tag the worker's heartbeat"):
        sqs.tag_queue(QueueUrl=url, Tags={TAG_WORKER_SEEN: iso(now or utc_now())})


def beat(sqs: SQSClient, url: str, stop: threading.Event, every_s: float = SEEN_EVERY_S) -> None:
    """Mark the worker seen now and every ``every_s`` until ``stop`` (a thread's loop)."""
    while True:
        mark_seen(sqs, url)
        if stop.wait(every_s):
            return


@dataclass(frozen=True)
class Readers:
    """What reads the main queue now."""

    worker_seen: str | None  # the last worker heartbeat, if recent
    mappings_enabled: int
    tap: TapState

    @property
    def any(self) -> bool:
        return self.tap.open and (self.worker_seen is not None or self.mappings_enabled > 0)

    def why_none(self) -> str:
        """Why nothing reads the queue, in words an operator can act on."""
        if not self.tap.open:
            by = self.tap.closed_by or "someone"
            reopens = "the guard's next probe" if self.tap.closed_by_guard else "tap open"
            why = self.tap.reason or "no reason given"
            return f"the tap is closed (by {by}: {why}); {reopens} reopens it"
        return (
            "no local worker was seen in the last "
            f"{SEEN_WITHIN_S / 60:.0f} min and no event source mapping is enabled; "
            "start northmigrate worker, or deploy"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker_seen": self.worker_seen,
            "mappings_enabled": self.mappings_enabled,
            "tap": "open" if self.tap.open else "closed",
            "reading": self.any,
        }


def readers(tap: Tap, now: Callable[[], datetime] = utc_now) -> Readers:
    """Who reads the tap's queue: a recent worker heartbeat, enabled mappings."""
    tags = read_tags(tap.sqs, tap.queues.main_url())
    seen = tags.get(TAG_WORKER_SEEN)
    recent = None
    if seen:
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(seen.replace("Z", "+00:00"))
            if now() - at <= timedelta(seconds=SEEN_WITHIN_S):
                recent = seen
    enabled = sum(1 for m in tap.status().mappings if m.enabled)
    return Readers(recent, enabled, TapState.from_tags(tags))
