"""ReceiveMessage, retried under a policy, as :class:`~northmigrate.aws.sqs.message.InMessage`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from northmigrate.aws.clients import AWS_EXCEPTIONS, is_fatal, translate
from northmigrate.aws.sqs.message import InMessage, normalise
from northmigrate.aws.sqs.queue import queue_name
from northmigrate.aws.sqs.retry import RECEIVE, Policy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# What every northmigrate receive asks for: the receive count, group and timestamps.
RECEIVE_ATTRIBUTES = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "MessageGroupId",
]


class _Stopped(Exception):
    """The caller asked to stop while a retry waited."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, AWS_EXCEPTIONS) and not is_fatal(exc)


def receive(
    sqs: SQSClient,
    url: str,
    *,
    max_number: int,
    wait_s: int,
    visibility_timeout: int | None = None,
    attribute_names: list[str] | None = None,
    policy: Policy = RECEIVE,
    sleep: Callable[[float], object] = time.sleep,
    stopped: Callable[[], bool] = lambda: False,
    on_retry: Callable[[str, float], None] | None = None,
) -> list[InMessage]:
    """Up to ``max_number`` (1..10) messages. A failed call is tried again under ``policy``
    (a fatal error at once raises AwsError, exit 3; so does the last failure); ``stopped()``
    true after a wait ends the receive with nothing. ``sleep`` may return early (a stop
    event's ``wait``); ``on_retry(reason, seconds)`` hears of each retry."""
    request: dict[str, Any] = {
        "QueueUrl": url,
        "MaxNumberOfMessages": max(1, min(10, max_number)),
        "WaitTimeSeconds": wait_s,
        "MessageAttributeNames": ["All"],
        "AttributeNames": attribute_names or RECEIVE_ATTRIBUTES,
    }
    if visibility_timeout is not None:
        request["VisibilityTimeout"] = visibility_timeout
    what = f"ReceiveMessage from {queue_name(url)}"

    def wait(seconds: float) -> None:
        sleep(seconds)
        if stopped():
            raise _Stopped()

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            reason = translate(error, what).message if error is not None else what
            on_retry(reason, state.next_action.sleep)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_random_exponential(multiplier=policy.base_s, max=policy.max_s),
        retry=retry_if_exception(_retryable),
        sleep=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                response = sqs.receive_message(**request)
    except _Stopped:
        return []
    except AWS_EXCEPTIONS as exc:
        raise translate(exc, what) from exc
    return [normalise(m) for m in response.get("Messages", [])]
