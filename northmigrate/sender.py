"""Send messages to SQS in batches, several batches in flight, and account for each one.

A message is reported as sent only when SQS listed it under ``Successful``. Entries that a
batch reports as failed through no fault of the sender are retried with backoff (tenacity);
whole calls are retried by botocore's retry mode. What still fails is reported with its
reason; a connection that stays down marks the sender ``broken`` so the caller stops.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from northmigrate.aws import AWS_EXCEPTIONS, is_fatal, translate
from northmigrate.batching import Batcher
from northmigrate.errors import AwsError
from northmigrate.validation import OutMessage

ResultCallback = Callable[[OutMessage, "str | None"], None]


class _Unconfirmed(Exception):
    """Some entries of a batch were not confirmed and may be retried."""


class SqsSender:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        *,
        on_result: ResultCallback,
        concurrency: int = 8,
        max_batch_bytes: int = 262_144,
        entry_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.on_result = on_result
        self.entry_attempts = entry_attempts
        self._sleep = sleep
        self._batcher: Batcher[OutMessage] = Batcher(max_batch_bytes)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nm-send")
        self._slots = threading.BoundedSemaphore(concurrency * 2)
        self.broken: AwsError | None = None
        self.calls = 0

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
        self._slots.acquire()
        try:
            self._pool.submit(self._run, batch)
        except BaseException:
            self._slots.release()
            raise

    def _run(self, batch: list[OutMessage]) -> None:
        try:
            self._send(batch)
        finally:
            self._slots.release()

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

    def _send(self, batch: list[OutMessage]) -> None:
        pending = {str(i): message for i, message in enumerate(batch)}
        if self.broken is not None:
            for message in pending.values():
                self.on_result(message, f"not sent: {self.broken.message}")
            return
        reasons: dict[str, str] = {}
        try:
            self._attempt(pending, reasons)  # nearly always the only one
            if pending:
                self._retry(pending, reasons)
        except _Unconfirmed:
            for entry_id, message in pending.items():
                why = reasons.get(entry_id, "not confirmed by SQS")
                self.on_result(message, f"not accepted after {self.entry_attempts} attempts: {why}")
        except AWS_EXCEPTIONS as exc:
            error = translate(exc, "SendMessageBatch")
            if is_fatal(exc):
                self.broken = error
            for message in pending.values():
                self.on_result(message, f"not sent: {error.message}")

    def _retry(self, pending: dict[str, OutMessage], reasons: dict[str, str]) -> None:
        """Attempts 2..entry_attempts for what the first call left unconfirmed.

        Full-jitter exponential waits: up to 0.05 s before the second attempt, then 0.1 s,
        0.2 s, … at most 2 s (tenacity's; the first attempt runs without it: it costs a
        measurable share of the client CPU of an enqueue).
        """
        if self.entry_attempts <= 1:
            raise _Unconfirmed()
        self._sleep(random.uniform(0, 0.05))
        retrying = Retrying(
            stop=stop_after_attempt(self.entry_attempts - 1),
            wait=wait_random_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type(_Unconfirmed),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self._attempt(pending, reasons)
                if pending:
                    raise _Unconfirmed()

    def _attempt(self, pending: dict[str, OutMessage], reasons: dict[str, str]) -> None:
        """One SendMessageBatch of the pending entries; takes out what SQS answered for."""
        self.calls += 1
        response = self.sqs.send_message_batch(
            QueueUrl=self.queue_url,
            Entries=[self._entry(i, m) for i, m in pending.items()],
        )
        for ok in response.get("Successful", []):
            if ok["Id"] in pending:
                self.on_result(pending.pop(ok["Id"]), None)
        for failed in response.get("Failed", []):
            code, text = failed.get("Code", "Error"), failed.get("Message", "")
            reason = f"{code}: {text}" if text else code
            if failed.get("SenderFault") and failed["Id"] in pending:
                refused = pending.pop(failed["Id"])
                self.on_result(refused, f"SQS refused the message: {reason}")
            else:
                reasons[failed["Id"]] = reason
