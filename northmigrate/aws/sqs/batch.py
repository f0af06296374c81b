"""SQS's batch calls with one result type: what SQS accepted, refused, or never confirmed.

A batch call (SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch) answers
per entry: ``Successful`` (accepted), or ``Failed`` with a code and ``SenderFault``. An entry
that failed by the sender's fault, or whose receipt handle is gone (``GONE_CODES``: the
message was deleted, or its visibility lapsed and someone else received it), is *refused*:
asking again cannot help. Any other failed entry, and every entry of a call that failed
as a whole, is asked again under the call's retry policy (:mod:`northmigrate.aws.sqs.retry`);
what is still unanswered after the last attempt is *unconfirmed* (a send that timed out may
still have taken effect: the caller treats it as not done, which at worst duplicates).
A fatal error (no endpoint, access denied, no queue) ends the call at once: the result
carries it in ``error`` and every entry not accepted by then as unconfirmed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from northmigrate.aws.clients import AWS_EXCEPTIONS, error_code, is_fatal, translate
from northmigrate.aws.sqs.queue import queue_name
from northmigrate.aws.sqs.retry import DELETE, SEND, VISIBILITY, Policy
from northmigrate.errors import AwsError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")
MAX_BATCH_ENTRIES = 10
# "This receipt handle no longer works": the one place that knows the codes.
GONE_CODES = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"})


def is_gone(exc: BaseException) -> bool:
    """A single call failed because the receipt handle is no longer valid."""
    return error_code(exc) in GONE_CODES


@dataclass
class BatchResult(Generic[T]):
    accepted: list[T] = field(default_factory=list)
    refused: list[tuple[T, str]] = field(default_factory=list)
    unconfirmed: list[tuple[T, str]] = field(default_factory=list)
    calls: int = 0
    retries: int = 0  # attempts botocore made again below ours (throttling, the wire)
    error: AwsError | None = None  # the fatal error that ended the call, if one did

    @property
    def strained(self) -> bool:
        """The call was throttled, retried or failed: the endpoint has had enough (the
        adaptive limit of calls in flight, :mod:`northmigrate.aws.inflight`, backs off)."""
        return self.calls > 1 or self.retries > 0 or self.error is not None

    @property
    def not_accepted(self) -> list[tuple[T, str]]:
        return self.refused + self.unconfirmed


class _Again(Exception):
    """Some entries are still unanswered: attempt once more."""


def run_batch(
    call: Callable[..., Any],
    url: str,
    items: Sequence[T],
    entry: Callable[[str, T], dict[str, Any]],
    *,
    policy: Policy,
    what: str,
    attempts: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_accepted: Callable[[T], None] | None = None,
) -> BatchResult[T]:
    """Call ``call(QueueUrl=url, Entries=[entry(id, item) ...])`` until every item is
    answered for or the policy's attempts are used up (see the module docstring).

    ``on_accepted(item)`` is called as soon as SQS accepts an item (a sender reports records
    as they are confirmed). The first attempt runs without tenacity's machinery (it is the
    only one nearly always); the wait before the second is up to half the policy's base.
    """
    result: BatchResult[T] = BatchResult()
    pending = {str(i): item for i, item in enumerate(items)}
    reasons: dict[str, str] = {}
    if not pending:
        return result
    total = attempts or policy.attempts

    def attempt() -> None:
        result.calls += 1
        try:
            response = call(QueueUrl=url, Entries=[entry(i, item) for i, item in pending.items()])
        except AWS_EXCEPTIONS as exc:
            error = translate(exc, f"{what} {queue_name(url)}")
            if is_fatal(exc):
                result.error = error
                return
            for entry_id in pending:
                reasons[entry_id] = error.message
            raise _Again() from exc
        result.retries += response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        for ok in response.get("Successful", []):
            item = pending.pop(str(ok.get("Id")), None)
            if item is not None:
                result.accepted.append(item)
                if on_accepted is not None:
                    on_accepted(item)
        for failed in response.get("Failed", []):
            entry_id = str(failed.get("Id"))
            code = str(failed.get("Code", "Error"))
            text = str(failed.get("Message", ""))
            reason = f"{code}: {text}" if text else code
            if entry_id not in pending:
                continue
            if failed.get("SenderFault") or code in GONE_CODES:
                result.refused.append((pending.pop(entry_id), reason))
            else:
                reasons[entry_id] = reason
        if pending:
            raise _Again()

    try:
        attempt()
    except _Again:
        if total > 1:
            sleep(random.uniform(0.0, policy.base_s / 2))
            try:
                for retry in policy.retrying(sleep=sleep, attempts=total):
                    with retry:
                        attempt()
            except _Again:
                pass
    result.unconfirmed.extend(
        (item, reasons.get(entry_id, "not confirmed by SQS")) for entry_id, item in pending.items()
    )
    return result


def send_batch(
    sqs: SQSClient,
    url: str,
    items: Sequence[T],
    entry: Callable[[str, T], dict[str, Any]],
    **options: Any,
) -> BatchResult[T]:
    """SendMessageBatch; ``entry(id, item)`` gives the entry (``Id`` set by the caller)."""
    options.setdefault("policy", SEND)
    return run_batch(
        sqs.send_message_batch, url, items, entry, what="SendMessageBatch to", **options
    )


def delete_batch(
    sqs: SQSClient,
    url: str,
    items: Sequence[T],
    handle: Callable[[T], str],
    **options: Any,
) -> BatchResult[T]:
    """DeleteMessageBatch of the items' receipt handles."""
    options.setdefault("policy", DELETE)
    return run_batch(
        sqs.delete_message_batch,
        url,
        items,
        lambda i, item: {"Id": i, "ReceiptHandle": handle(item)},
        what="DeleteMessageBatch on",
        **options,
    )


def change_visibility_batch(
    sqs: SQSClient,
    url: str,
    items: Sequence[T],
    handle: Callable[[T], str],
    timeout: Callable[[T], int],
    **options: Any,
) -> BatchResult[T]:
    """ChangeMessageVisibilityBatch: each item hidden for ``timeout(item)`` seconds from
    now (0: visible again at once)."""
    options.setdefault("policy", VISIBILITY)
    return run_batch(
        sqs.change_message_visibility_batch,
        url,
        items,
        lambda i, item: {
            "Id": i,
            "ReceiptHandle": handle(item),
            "VisibilityTimeout": timeout(item),
        },
        what="ChangeMessageVisibilityBatch on",
        **options,
    )


def chunks(items: Sequence[T], size: int = MAX_BATCH_ENTRIES) -> list[Sequence[T]]:
    """``items`` in runs of at most ``size`` (a batch call takes ten entries)."""
    return [items[i : i + size] for i in range(0, len(items), size)]
