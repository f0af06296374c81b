"""The one per-record path: one SQS message in, one outcome out.

The local worker and the Lambda handler both call :meth:`Processor.process`. It accepts a
message as ``ReceiveMessage`` returns it or as a Lambda SQS event record
(:func:`northmigrate.aws.sqs.message.normalise`), then:

1. parses the envelope (numbers exact, :mod:`northmigrate.records`): a body that is not one
   is dead-lettered (``unreadable``);
2. checks it belongs to this migration: another migration's envelope is dead-lettered
   (``unreadable``);
3. validates the record with the plugin's model again, the same way ``validate`` did
   (:func:`northmigrate.records.build`): schema drift is dead-lettered (``invalid``), and so
   is a model validator that raises anything at all;
4. calls ``handler(record, ctx)``; ``PermanentError`` is dead-lettered at once
   (``permanent``); any other exception is classified (:mod:`northmigrate.failures`):
   a ``record`` error or an ``outage`` is a retry with its kind's backoff, except on the
   last allowed attempt (``attempt >= max_receive_count``), where it is dead-lettered
   (``exhausted``); a ``throttled`` failure is never an attempt: the record comes back
   later with its count unchanged, and is never dead-lettered for it. While the guard
   probes a closed tap (``probe=True``) an outage is not charged a try either.

Every failure outcome carries its ``error_kind`` (``record``, ``throttled``, ``outage``);
so do the failure entries of the envelope and a dead letter's attributes.

**Attempts.** On a standard queue the attempt is the envelope's ``attempts`` plus one, and
a retry is a new copy of the message (``attempts`` one higher, the failure in its history,
a delay of the backoff) sent to the main queue; only when SQS confirmed the copy does the
outcome (``REQUEUED``) allow the old one to be deleted. A receive that tried nothing (a
peek, a hand-back, a killed worker) never counts as an attempt. When that send fails, the
retry stays in place (``RETRY``: the visibility backoff), and the same attempt is made
again. On a FIFO queue a retry always stays in place, to keep its group's order, and the
attempt is SQS's receive count.

**Dead letters** are a move done here: ``SendMessage`` to the DLQ first (see
:mod:`northmigrate.consume.resend`: the body kept, the failure and provenance added, fitted under
the DLQ's size limit), and only when SQS confirmed it does the outcome allow the message to
be deleted from the main queue. If the send fails the message stays (a retry in place),
and the queue's redrive policy remains the backstop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from northmigrate import records
from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.message import InMessage, normalise
from northmigrate.consume import resend
from northmigrate.consume.backoff import SQS_MAX_DELAY_S
from northmigrate.failures import OUTAGE, RECORD, THROTTLED, classify
from northmigrate.plugin import Migration, MigrationContext, PermanentError
from northmigrate.records import envelope
from northmigrate.records.envelope import EnvelopeError, utc_now
from northmigrate.records.validation import describe_validation
from northmigrate.redact import Scrubber, error_text, sensitive_leaves

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.processing")

REASON_LIMIT = 1_000  # characters of a reason kept on a dead letter
KIND_RETRY = "retry"
KIND_PERMANENT = "permanent"
KIND_EXHAUSTED = "exhausted"
KIND_INVALID = "invalid"
KIND_UNREADABLE = "unreadable"


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # tried again in place: the message stays (visibility backoff)
    REQUEUED = "requeued"  # tried again as a new, delayed copy: the message may go
    DEAD_LETTERED = "dead_lettered"


@dataclass
class Outcome:
    """What became of one message. ``delete`` says whether it may leave the main queue."""

    status: Status
    message: InMessage
    record_id: str | None = None
    kind: str | None = None  # the failure kind of a dead letter
    reason: str | None = None  # "<ErrorClass>: <message>", sensitive values scrubbed
    error: BaseException | None = None
    dead_letter_error: str | None = None  # the DLQ send failed: the message stays
    attempt: int = 1
    delay_s: int | None = None  # a retry: seconds before it is tried again
    run_id: str = ""  # the enqueue run the record came from (its envelope's)
    duration_s: float = 0.0  # how long this message took, the plugin's handler included
    error_kind: str | None = None  # a failure's kind: record, throttled or outage
    charged: bool = True  # the try counts against max_receive_count (not when throttled)

    @property
    def delete(self) -> bool:
        return self.status in (Status.SUCCEEDED, Status.DEAD_LETTERED, Status.REQUEUED)

    @property
    def retried(self) -> bool:
        return self.status in (Status.RETRY, Status.REQUEUED)

    @property
    def backoff_kind(self) -> str:
        """The kind whose backoff a retry waits (an unclassified one: an outage's, patient)."""
        return self.error_kind or OUTAGE


def _reason(error_class: str, text: str, scrubber: Scrubber) -> str:
    reason = scrubber.scrub(f"{error_class}: {text}".rstrip(": ").strip())
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"


def _no_delay(attempt: int, kind: str = OUTAGE, ceiling_s: int = SQS_MAX_DELAY_S) -> int:
    return 0


RetryDelay = Callable[..., int]  # (attempt, kind, ceiling_s) -> seconds: backoff.RetryDelays


class Processor:
    """Turns one message into one outcome for a migration (see the module docstring).

    ``queue_url`` is the main queue: with it, a retry on a standard queue is a delayed copy
    sent there (``REQUEUED``); without it, every retry stays in place (``RETRY``).
    ``retry_delay(attempt, kind)`` gives the backoff in seconds (:class:`backoff.RetryDelays`).
    """

    def __init__(
        self,
        migration: Migration[Any],
        *,
        clients: AwsClients,
        options: Mapping[str, Any],
        dlq_url: str,
        max_receive_count: int,
        fifo: bool = False,
        sqs: SQSClient | None = None,
        clock: Any = utc_now,
        queue_url: str | None = None,
        retry_delay: RetryDelay = _no_delay,
    ) -> None:
        self.migration = migration
        self.clients = clients
        self.options = options
        self.dlq_url = dlq_url
        self.queue_url = queue_url
        self.max_receive_count = max_receive_count
        self.fifo = fifo
        self.sqs = sqs if sqs is not None else clients.client("sqs")
        self.retry_delay = retry_delay
        self._clock = clock
        self.resender = resend.Resender(self.sqs, dlq_url=dlq_url, queue_url=queue_url, fifo=fifo)
        self.plugin_log = logging.getLogger(f"northmigrate.plugin.{migration.name}")

    def process(self, raw: Mapping[str, Any] | InMessage, *, probe: bool = False) -> Outcome:
        """One message's outcome. ``probe``: the guard tries it while the tap is closed after
        an outage, so that an outage again is not charged a try."""
        started = time.monotonic()
        message = normalise(raw)
        try:
            env = envelope.parse(message.body)
        except EnvelopeError as exc:
            reason = _reason("EnvelopeError", str(exc), Scrubber.for_values(()))
            outcome = self._dead_letter(message, None, None, KIND_UNREADABLE, reason, exc, 0)
        else:
            outcome = self._process(message, env, probe)
            outcome.run_id = env.run_id
        outcome.duration_s = time.monotonic() - started
        return outcome

    def _process(self, message: InMessage, env: envelope.Envelope, probe: bool) -> Outcome:
        attempt = self._attempt(message, env)
        if env.migration != self.migration.name:
            reason = (
                f"ForeignMessage: an envelope of migration {env.migration!r}, "
                f"not {self.migration.name!r}"
            )
            return self._dead_letter(
                message, env, env.record_id, KIND_UNREADABLE, reason, None, attempt
            )
        # Every text made of an exception goes through the record's scrubber: its values in
        # every form a text may give them (repr, escapes, dates, truncated fragments).
        scrubber = Scrubber.for_record(env.record, self.migration.sensitive)
        try:
            record: BaseModel = records.build(self.migration.model, env.record)
        except ValidationError as exc:
            reason = _reason("ValidationError", describe_validation(exc), scrubber)
            return self._dead_letter(
                message, env, env.record_id, KIND_INVALID, reason, exc, attempt
            )
        except Exception as exc:  # a model validator of the plugin raised something else
            reason = _reason(type(exc).__name__, error_text(exc), scrubber)
            return self._dead_letter(
                message, env, env.record_id, KIND_INVALID, reason, exc, attempt
            )
        scrubber = scrubber.extended(sensitive_leaves(record, self.migration.sensitive))
        ctx = MigrationContext(
            options=self.options,
            aws=self.clients,
            attempt=attempt,
            message_id=message.message_id,
            log=self.plugin_log,
        )
        try:
            self.migration.handler(record, ctx)
        except PermanentError as exc:
            reason = _reason(type(exc).__name__, error_text(exc), scrubber)
            return self._dead_letter(
                message, env, env.record_id, KIND_PERMANENT, reason, exc, attempt
            )
        except (Exception, SystemExit) as exc:  # the handler's failure, whatever it is: retried
            reason = _reason(type(exc).__name__, error_text(exc), scrubber)
            kind = classify(exc, self.migration.classify)
            charged = kind != THROTTLED and not (probe and kind == OUTAGE)
            if charged and attempt >= self.max_receive_count:
                return self._dead_letter(
                    message, env, env.record_id, KIND_EXHAUSTED, reason, exc, attempt, kind
                )
            return self._retry(message, env, reason, exc, attempt, kind, charged)
        return Outcome(Status.SUCCEEDED, message, env.record_id, attempt=attempt)

    def _attempt(self, message: InMessage, env: envelope.Envelope) -> int:
        if self.fifo or self.queue_url is None:
            return max(message.attempt, env.attempts + 1)
        return env.attempts + 1

    # -- retries and dead letters: sent on by the resender -------------------------------

    def _retry(
        self,
        message: InMessage,
        env: envelope.Envelope,
        reason: str,
        error: BaseException,
        attempt: int,
        error_kind: str,
        charged: bool,
    ) -> Outcome:
        """A retry with the kind's backoff; a try not ``charged`` goes back with its count
        unchanged (the copy's ``attempts`` stay the envelope's)."""
        delay = self.retry_delay(attempt, error_kind)
        if self.fifo or self.queue_url is None:
            status = Status.RETRY
        else:
            delay = min(delay, SQS_MAX_DELAY_S)
            entry = self._entry(KIND_RETRY, reason, attempt, message, error_kind)
            counted = attempt if charged else env.attempts
            sent = self.resender.requeue(message, env, entry, attempt=counted, delay_s=delay)
            status = Status.REQUEUED if sent else Status.RETRY
        return Outcome(
            status,
            message,
            env.record_id,
            None,
            reason,
            error,
            None,
            attempt,
            delay,
            error_kind=error_kind,
            charged=charged,
        )

    def _entry(
        self, kind: str, reason: str, attempt: int, message: InMessage, error_kind: str
    ) -> dict[str, Any]:
        return envelope.failure(
            kind=kind,
            error_class=reason.split(":", 1)[0],
            reason=reason,
            attempt=attempt,
            migration=self.migration.name,
            version=self.migration.version,
            at=self._now(),
            message_id=message.message_id,
            error_kind=error_kind,
        )

    def _dead_letter(
        self,
        message: InMessage,
        env: envelope.Envelope | None,
        record_id: str | None,
        kind: str,
        reason: str,
        error: BaseException | None,
        attempt: int,
        error_kind: str = RECORD,
    ) -> Outcome:
        entry = self._entry(kind, reason, attempt, message, error_kind)
        why = self.resender.dead_letter(
            message, env, entry, record_id=record_id, kind=kind, error_kind=error_kind
        )
        status = Status.RETRY if why is not None else Status.DEAD_LETTERED
        if why is None:
            log.info(
                "dead-lettered message %s (record %s, %s): %s",
                message.message_id,
                record_id,
                error_kind,
                reason,
            )
        return Outcome(
            status, message, record_id, kind, reason, error, why, attempt, error_kind=error_kind
        )

    def _now(self) -> datetime:
        now = self._clock()
        assert isinstance(now, datetime)
        return now
