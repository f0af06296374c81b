"""Send messages to SQS in batches, several batches in flight, and account for each one.

The number of batches in flight adapts to the endpoint (:mod:`northmigrate.aws.inflight`): it
grows while the rate grows and the CPU allows, and halves when a batch was throttled or
retried; ``concurrency`` is its cap. The caller's thread waits in ``submit`` while the
limit is reached.

A message is reported as sent only when SQS listed it under ``Successful``. Entries that a
batch reports as failed through no fault of the sender, and calls that fail on the way,
are retried under the send policy (:mod:`northmigrate.aws.sqs.batch`); botocore's retry mode
retries each call below that. What still fails is reported with its reason; a fatal error
(no endpoint, no access, no queue) marks the sender ``broken`` so the caller stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from northmigrate.aws.inflight import InFlight
from northmigrate.aws.sqs.batch import send_batch
from northmigrate.aws.sqs.batching import Batcher
from northmigrate.errors import AwsError
from northmigrate.records.validation import OutMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ResultCallback = Callable[[OutMessage, "str | None"], None]


class SqsSender:
    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        on_result: ResultCallback,
        concurrency: int = 8,
        max_batch_bytes: int = 262_144,
        entry_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        inflight: InFlight | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.on_result = on_result
        self.entry_attempts = entry_attempts
        self._sleep = sleep
        self._batcher: Batcher[OutMessage] = Batcher(max_batch_bytes)
        self.inflight = inflight or InFlight(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.inflight.cap, thread_name_prefix="nm-send")
        self.broken: AwsError | None = None
        self.calls = 0  # SendMessageBatch calls made (for tests and benchmarks)
        self._calls_lock = threading.Lock()

    def submit(self, message: OutMessage) -> None:
        full = self._batcher.add(message)
        if full:
            self._dispatch(full)

    def flush(self) -> None:
        last = self._batcher.flush()
        if last:
            self._dispatch(last)

    def close(self) -> None:
        """Send what is buffered and wait for every batch in flight."""
        self.flush()
        self._pool.shutdown(wait=True)

    def _dispatch(self, batch: list[OutMessage]) -> None:
        self.inflight.acquire()
        try:
            self._pool.submit(self._run, batch)
        except BaseException:
            self.inflight.release()
            raise

    def _run(self, batch: list[OutMessage]) -> None:
        sent, strained = 0, True
        try:
            sent, strained = self._send(batch)
        finally:
            self.inflight.release(sent, strained=strained)

    @staticmethod
    def _entry(entry_id: str, message: OutMessage) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": entry_id,
            "MessageBody": message.body,
            "MessageAttributes": message.attributes,
        }
        if message.group_id is not None:
            entry["MessageGroupId"] = message.group_id
            entry["MessageDeduplicationId"] = message.dedup_id
        return entry

    def _send(self, batch: list[OutMessage]) -> tuple[int, bool]:
        """(messages SQS confirmed, whether the call was strained)."""
        if self.broken is not None:
            for message in batch:
                self.on_result(message, f"not sent: {self.broken.message}")
            return 0, False
        result = send_batch(
            self.sqs,
            self.queue_url,
            batch,
            self._entry,
            attempts=self.entry_attempts,
            sleep=self._sleep,
            on_accepted=lambda message: self.on_result(message, None),
        )
        with self._calls_lock:
            self.calls += result.calls
        for message, reason in result.refused:
            self.on_result(message, f"SQS refused the message: {reason}")
        if result.error is not None:
            if self.broken is None:
                self.broken = result.error
            for message, _ in result.unconfirmed:
                self.on_result(message, f"not sent: {result.error.message}")
            return len(result.accepted), True
        for message, reason in result.unconfirmed:
            self.on_result(message, f"not accepted after {self.entry_attempts} attempts: {reason}")
        return len(result.accepted), result.strained
