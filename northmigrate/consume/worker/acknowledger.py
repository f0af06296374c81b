"""The acknowledger: what becomes of a message once its outcome is known, in batches.

A migrated message, a dead-lettered one (its copy confirmed in the DLQ) and a retry whose
delayed copy SQS confirmed are deleted (``DeleteMessageBatch``); a retry in place is hidden
for its backoff, and a message received but never started is handed back (visible at once),
both with ``ChangeMessageVisibilityBatch``. Acknowledgements wait up to ``ACK_LINGER_S`` to
fill a batch of ten. A delete that SQS refused or never confirmed is counted
(``delete_failed``): SQS delivers that message again, and the handler is idempotent.

How many acknowledgements are in flight at once adapts (:mod:`northmigrate.aws.inflight`): a
thread takes a slot before it gathers a batch, at most ``threads`` at once; a throttled or
retried call halves the limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from northmigrate.aws.inflight import InFlight
from northmigrate.aws.sqs.batch import (
    MAX_BATCH_ENTRIES,
    BatchResult,
    change_visibility_batch,
    delete_batch,
)
from northmigrate.aws.sqs.message import InMessage
from northmigrate.consume.events import Emit, record_event, released_event
from northmigrate.consume.guard import Guard
from northmigrate.consume.processing import Outcome
from northmigrate.consume.worker.ledger import Ledger
from northmigrate.consume.worker.report import WorkerReport

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.worker")

ACK_LINGER_S = 0.02  # how long an acknowledger waits to fill a batch


@dataclass(frozen=True)
class Ack:
    message: InMessage
    visibility: int | None  # None: delete; otherwise ChangeMessageVisibility to this


class Acknowledger:
    """Settles outcomes and hand-backs, and acknowledges them on ``threads`` threads."""

    def __init__(
        self,
        sqs: SQSClient,
        url: str,
        *,
        ledger: Ledger,
        report: WorkerReport,
        retry_visibility: Callable[[int, str], int],
        threads: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        emit: Emit | None = None,
        migration: str = "",
        guard: Guard | None = None,
        inflight: InFlight | None = None,
    ) -> None:
        self.sqs = sqs
        self.inflight = inflight  # None: every thread's acknowledgement at once
        self.url = url
        self.ledger = ledger
        self.report = report
        self.retry_visibility = retry_visibility  # (attempt, kind) -> seconds hidden in place
        self.threads = threads
        self._clock = clock
        self._sleep = sleep
        self._acks: queue.Queue[Ack | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._running: list[threading.Thread] = []
        self._emit = emit  # one structured event per outcome (northmigrate.consume.events)
        self._guard = guard  # counts the handler's failures (northmigrate.consume.guard)
        self._migration = migration

    @property
    def pending(self) -> int:
        """Acknowledgements not yet done."""
        with self._lock:
            return self._pending

    # -- settling -------------------------------------------------------------------------

    def settle(self, outcome: Outcome) -> None:
        """The outcome of a started message: counted, and acknowledged."""
        message = self.ledger.let_go(outcome.message)
        if outcome.delete:
            ack = Ack(message, None)
        else:  # in place: hidden for the backoff, at most the queue's visibility timeout
            ack = Ack(message, self.retry_visibility(outcome.attempt, outcome.backoff_kind))
        self.report.count(outcome)
        if self._guard is not None:
            self._guard.record(outcome)
        if self._emit is not None:
            self._emit(record_event(outcome, migration=self._migration, consumer="worker"))
        if outcome.retried:
            log.info(
                "record %s (attempt %d) will be tried again in %s s: %s",
                outcome.record_id,
                outcome.attempt,
                outcome.delay_s if ack.visibility is None else ack.visibility,
                outcome.reason,
            )
        self._expect(1)  # before the ledger lets go: pending and held never both read 0
        if self.ledger.settled(1):
            self._acks.put(ack)
        else:
            self._expect(-1)  # closed: too late to acknowledge, SQS delivers it again

    def hand_back(self, messages: list[InMessage]) -> None:
        """Make received-but-unstarted messages visible again at once."""
        if not messages:
            return
        messages = [self.ledger.let_go(message) for message in messages]
        self.report.add(released=len(messages))
        if self._emit is not None:
            for message in messages:
                self._emit(released_event(message, migration=self._migration, consumer="worker"))
        self._expect(len(messages))
        self.ledger.settled(len(messages))
        for message in messages:
            self._acks.put(Ack(message, 0))

    def _expect(self, n: int) -> None:
        with self._lock:
            self._pending += n

    # -- the threads ----------------------------------------------------------------------

    def start(self, spawn: Callable[[Callable[[], None], str], threading.Thread]) -> None:
        self._running = [spawn(self._loop, f"nm-ack-{i}") for i in range(self.threads)]

    def stop(self, timeout_s: float = 60) -> None:
        """Acknowledge what is queued, then end the threads."""
        for _ in self._running:
            self._acks.put(None)
        for thread in self._running:
            thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        """Take a slot, then a batch (so that only as many batches wait to go out as may
        go out at once), acknowledge it, give the slot back; until the end mark."""
        inflight = self.inflight
        finished = False
        while not finished:
            if inflight is not None:
                inflight.acquire()
            done, strained = 0, True
            try:
                batch, finished = self._next_batch()
                if not batch:
                    strained = False
                    return
                try:
                    strained = self.acknowledge(batch)
                    done = len(batch)
                finally:
                    self._expect(-len(batch))
            finally:
                if inflight is not None:
                    inflight.release(done, strained=strained)

    def _next_batch(self) -> tuple[list[Ack], bool]:
        """Up to ten acknowledgements, waiting ``ACK_LINGER_S`` to fill the batch; and
        whether the end mark came (an empty batch: it came first)."""
        first = self._acks.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = self._clock() + ACK_LINGER_S
        while len(batch) < MAX_BATCH_ENTRIES:
            remaining = deadline - self._clock()
            try:
                item = self._acks.get(timeout=max(remaining, 0.0) or 0.001)
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def acknowledge(self, batch: list[Ack]) -> bool:
        """Delete or change the visibility of each; whether a call was strained."""
        strained = False
        deletes = [a for a in batch if a.visibility is None]
        changes = [a for a in batch if a.visibility is not None]
        if deletes:
            result = delete_batch(
                self.sqs, self.url, deletes, lambda a: a.message.receipt_handle, sleep=self._sleep
            )
            self._log("DeleteMessageBatch", result)
            strained = result.strained
            if result.not_accepted:
                self.report.add(delete_failed=len(result.not_accepted))
        if changes:
            result = change_visibility_batch(
                self.sqs,
                self.url,
                changes,
                lambda a: a.message.receipt_handle,
                lambda a: a.visibility or 0,
                sleep=self._sleep,
            )
            self._log("ChangeMessageVisibilityBatch", result)
            strained = strained or result.strained
        return strained

    @staticmethod
    def _log(operation: str, result: BatchResult[Ack]) -> None:
        for ack, why in result.not_accepted:
            log.warning("%s: message %s: %s", operation, ack.message.message_id, why)
