"""The client-side mover: one chunk of dead letters sent to the destination, then deleted.

Per chunk of up to 10 messages: ``SendMessageBatch`` to the destination, and
``DeleteMessageBatch`` on the DLQ only for the entries the destination confirmed (both
through :mod:`northmigrate.aws.sqs.batch`). A crash at any point leaves each message in the
DLQ, in the destination, or in both (the worker is idempotent), never in neither.

On the way back each message keeps its body and message attributes, except the
``northmigrate.reason``/``northmigrate.failure_kind`` attributes: the reason already is the
last entry of the envelope's ``failures`` (its history), and the envelope gets a
``redrives`` entry (from, to, when, the reason it had). On a FIFO destination the message
group id is kept, and the deduplication id is derived from the message id and this run's
id: a retried send within one run is deduplicated, a later redrive of the same message is
not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from northmigrate import records
from northmigrate.aws.sqs.batch import delete_batch, send_batch
from northmigrate.aws.sqs.batching import MAX_BATCH_ENTRIES, batches
from northmigrate.aws.sqs.message import message_size
from northmigrate.aws.sqs.queue import fifo_fields, is_fifo, queue_name
from northmigrate.config import SQS_MAX_MESSAGE_SIZE
from northmigrate.dlq.letters import Letter
from northmigrate.records import envelope
from northmigrate.records.envelope import utc_now

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.dlq")

_DROPPED_ATTRIBUTES = {envelope.ATTR_REASON, envelope.ATTR_FAILURE_KIND, envelope.ATTR_ERROR_KIND}


@dataclass
class Moved:
    """What became of a chunk: moved (sent, confirmed, deleted), failed with a reason
    (still in the DLQ), sent but not deleted (in both queues); ``strained`` when a call was
    throttled or retried on the way (the adaptive limit backs off)."""

    moved: list[Letter]
    failed: list[tuple[Letter, str]]
    undeleted: list[Letter]
    strained: bool = False


@dataclass
class _Entry:
    letter: Letter
    request: dict[str, Any]
    size: int


def redriven_body(body: str, entry: dict[str, Any]) -> str:
    """The envelope with ``entry`` appended to its ``redrives``; any other body unchanged.

    Works on the JSON itself so that keys this version does not know travel on untouched,
    and every number keeps its exact value (see northmigrate.records.envelope). A dead letter's
    first redrive, whose ``failures`` need no trimming, gets its history written into the
    text as it came (the same JSON value as :func:`envelope.with_history` gives, at a
    fraction of the CPU: nothing of the record is written again).
    """
    data = envelope.load_body(body)
    if data is None:
        return body
    text = body.rstrip()
    if "redrives" not in data and _untouched_failures(data) and text.endswith("}"):
        return f'{text[:-1]},"redrives":[{records.dumps(entry)}]}}'
    return envelope.with_history(body, "redrives", entry)


def _untouched_failures(data: dict[str, Any]) -> bool:
    """``failures`` as :func:`envelope.add_history` would leave it: absent, or a list of
    at most ``HISTORY_LIMIT`` objects."""
    if "failures" not in data:
        return True
    failures = data["failures"]
    return (
        isinstance(failures, list)
        and 0 < len(failures) <= envelope.HISTORY_LIMIT
        and all(isinstance(f, dict) for f in failures)
    )


class Mover:
    """Sends a chunk of letters to the destination and deletes the confirmed ones."""

    def __init__(
        self,
        sqs: SQSClient,
        source_url: str,
        destination_url: str,
        *,
        run_id: str,
        max_message_size: int = SQS_MAX_MESSAGE_SIZE,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs = sqs
        self.source_url = source_url
        self.destination_url = destination_url
        self.run_id = run_id
        self.max_message_size = max_message_size
        self.fifo = is_fifo(destination_url)
        self._clock = clock
        self._sleep = sleep

    def entry(self, index: int, letter: Letter) -> _Entry:
        message = letter.message
        attrs = {
            k: dict(v)
            for k, v in message.message_attributes.items()
            if k not in _DROPPED_ATTRIBUTES
        }
        history = envelope.redrive_entry(
            source=queue_name(self.source_url),
            destination=queue_name(self.destination_url),
            at=self._clock(),
            run=self.run_id,
        )
        history["reason"] = letter.reason
        body = redriven_body(message.body, history)
        size = message_size(body, attrs)
        if size > self.max_message_size:  # the history would not fit: send it as it was
            body = message.body
            size = message_size(body, attrs)
        request: dict[str, Any] = {"Id": str(index), "MessageBody": body}
        if attrs:
            request["MessageAttributes"] = attrs
        if self.fifo:
            group = message.group_id or letter.record_id or message.message_id
            request |= fifo_fields(group or "", f"{self.run_id}\0{message.message_id}")
        return _Entry(letter, request, size)

    def move(self, letters: Sequence[Letter]) -> Moved:
        """Send the letters, then delete the confirmed ones. Raises AwsError when the
        destination or the DLQ cannot be used at all (nothing is lost: the caller gives
        the chunk back)."""
        entries = [self.entry(i, letter) for i, letter in enumerate(letters)]
        done = Moved([], [], [])
        for batch in batches(entries, self.max_message_size, MAX_BATCH_ENTRIES):
            confirmed, refused = self._send(batch, done)
            done.failed.extend(refused)
            deleted, undeleted = self._delete([e.letter for e in confirmed], done)
            done.moved.extend(deleted)
            done.undeleted.extend(undeleted)
        return done

    def _send(
        self, batch: list[_Entry], done: Moved
    ) -> tuple[list[_Entry], list[tuple[Letter, str]]]:
        """(confirmed, refused with reason). A fatal error (the destination cannot be used
        at all) raises AwsError: the caller gives the whole chunk back, and a message that
        was sent before it is then in both queues (harmless: the worker is idempotent)."""
        result = send_batch(
            self.sqs,
            self.destination_url,
            batch,
            lambda entry_id, entry: dict(entry.request, Id=entry_id),
            sleep=self._sleep,
        )
        if result.error is not None:
            raise result.error
        done.strained = done.strained or result.strained
        refused = [(entry.letter, why) for entry, why in result.not_accepted]
        return result.accepted, refused

    def _delete(self, letters: list[Letter], done: Moved) -> tuple[list[Letter], list[Letter]]:
        """(deleted, sent but not deleted: in both queues)."""
        if not letters:
            return [], []
        result = delete_batch(
            self.sqs,
            self.source_url,
            letters,
            lambda letter: letter.message.receipt_handle,
            sleep=self._sleep,
        )
        done.strained = done.strained or result.strained
        undeleted = [letter for letter, _ in result.not_accepted]
        if undeleted:
            log.warning(
                "%d messages were sent to %s but could not be deleted from %s: they are in "
                "both queues (harmless: the worker is idempotent)",
                len(undeleted),
                queue_name(self.destination_url),
                queue_name(self.source_url),
            )
        return result.accepted, undeleted
