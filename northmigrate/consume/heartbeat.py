"""The visibility heartbeat: messages still being worked on stay invisible to other consumers.

Every message the worker holds (received, and not yet deleted or handed back) is tracked
here. Each time a third of the extension has passed since a message was last extended (or
received), its visibility is set to the full extension again, in batches of ten. SQS caps a
message's total visibility at 12 hours from its receipt; the heartbeat stays within that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from northmigrate.aws.sqs.batch import MAX_BATCH_ENTRIES, change_visibility_batch
from northmigrate.aws.sqs.retry import HEARTBEAT
from northmigrate.consume.backoff import SQS_MAX_VISIBILITY_S

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.heartbeat")


@dataclass
class _Held:
    receipt_handle: str
    received_at: float
    extended_at: float


class Heartbeat:
    """Extends the visibility of held messages; ``tick`` does one round (tests call it)."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        visibility_timeout_s: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        # A queue without a visibility timeout still gets a useful lease while we hold it.
        self.extension_s = visibility_timeout_s if visibility_timeout_s > 0 else 30
        self.interval_s = self.extension_s / 3.0
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()  # held during a round's calls: see ``remove``
        self.extended = 0
        self.failed = 0

    def add(self, key: str, receipt_handle: str) -> None:
        now = self._clock()
        with self._lock:
            self._held[key] = _Held(receipt_handle, now, now)

    def remove(self, key: str) -> None:
        """Stop extending ``key``. Waits for a round in progress, so that a visibility the
        caller sets next (a backoff, or 0 to hand it back) is not overwritten by this one."""
        with self._lock:
            self._held.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def due(self, now: float) -> list[str]:
        with self._lock:
            return [k for k, h in self._held.items() if now - h.extended_at >= self.interval_s]

    def tick(self) -> int:
        """Extend every message that is due; returns how many were extended."""
        with self._lock:
            now = self._clock()
            due: list[tuple[str, _Held, int]] = []
            for key, held in self._held.items():
                if now - held.extended_at < self.interval_s:
                    continue
                left = int(SQS_MAX_VISIBILITY_S - (now - held.received_at)) - 1
                extension = min(self.extension_s, left)
                if extension > 0:
                    due.append((key, held, extension))
            for start in range(0, len(due), MAX_BATCH_ENTRIES):
                chunk = due[start : start + MAX_BATCH_ENTRIES]
                self._extend(chunk, now)
            return sum(1 for _key, held, _ext in due if held.extended_at == now)

    def _extend(self, chunk: list[tuple[str, _Held, int]], now: float) -> None:
        result = change_visibility_batch(
            self.sqs,
            self.queue_url,
            chunk,
            lambda due: due[1].receipt_handle,
            lambda due: due[2],
            policy=HEARTBEAT,  # the next round is the retry
        )
        for _key, held, _ext in result.accepted:
            held.extended_at = now
            self.extended += 1
        self.failed += len(result.not_accepted)
        for _due, why in result.not_accepted[:1]:
            log.warning(
                "heartbeat: could not extend %d messages: %s", len(result.not_accepted), why
            )

    def run(self, stop: threading.Event, poll_s: float | None = None) -> None:
        """Tick until ``stop`` is set (the worker runs this on its own thread)."""
        poll = poll_s if poll_s is not None else min(1.0, self.interval_s / 4)
        while not stop.wait(poll):
            try:
                self.tick()
            except Exception:  # the heartbeat must outlive any one bad round
                log.exception("heartbeat round failed")
