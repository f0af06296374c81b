from __future__ import annotations

import threading
import time
from typing import Any

import botocore.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.aws.inflight import InFlight, Tuning
from northmigrate.enqueue.sender import SqsSender
from northmigrate.records.validation import OutMessage

# What the fake SQS does with one entry on one call.
OUTCOMES = ["ok", "retryable", "sender_fault", "missing"]


class FakeSqs:
    """Answers each SendMessageBatch entry by a script; raises for whole-call faults."""

    def __init__(self, script: list[str], call_faults: list[bool]) -> None:
        self.script = script
        self.call_faults = call_faults
        self.accepted: list[str] = []
        self.lock = threading.Lock()
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            call = self.calls
            self.calls += 1
            if self.call_faults and self.call_faults[call % len(self.call_faults)]:
                raise botocore.exceptions.ClientError(
                    {"Error": {"Code": "InternalError", "Message": "boom"}}, "SendMessageBatch"
                )
            ok, failed = [], []
            for n, entry in enumerate(Entries):
                outcome = self.script[(call * 10 + n) % len(self.script)] if self.script else "ok"
                if outcome == "ok":
                    self.accepted.append(entry["MessageBody"])
                    ok.append({"Id": entry["Id"], "MessageId": f"m{call}-{n}"})
                elif outcome in ("retryable", "sender_fault"):
                    failed.append(
                        {
                            "Id": entry["Id"],
                            "Code": "X",
                            "Message": "no",
                            "SenderFault": outcome == "sender_fault",
                        }
                    )
            return {"Successful": ok, "Failed": failed}


def message(n: int) -> OutMessage:
    return OutMessage(f"R{n}", n, f"body-{n}", {}, 100)


@given(
    count=st.integers(0, 60),
    script=st.lists(st.sampled_from(OUTCOMES), max_size=12),
    call_faults=st.lists(st.booleans(), max_size=5),
    concurrency=st.integers(1, 4),
)
@settings(max_examples=150, deadline=None)
def test_every_message_gets_one_result_and_sent_means_accepted(
    count: int, script: list[str], call_faults: list[bool], concurrency: int
) -> None:
    fake = FakeSqs(script, call_faults)
    results: dict[str, str | None] = {}
    lock = threading.Lock()

    def on_result(msg: OutMessage, error: str | None) -> None:
        with lock:
            assert msg.body not in results, "two results for one message"
            results[msg.body] = error

    sender = SqsSender(
        fake, "url", on_result=on_result, concurrency=concurrency, sleep=lambda _: None
    )
    for n in range(count):
        sender.submit(message(n))
    sender.close()
    assert len(results) == count
    sent = {body for body, error in results.items() if error is None}
    assert sent <= set(fake.accepted)  # never reported as sent unless SQS accepted it
    assert all(error for error in results.values() if error is not None)  # failures say why


def test_retryable_entries_are_retried_until_accepted() -> None:
    fake = FakeSqs(["retryable", "ok", "ok"], [])
    errors: list[str | None] = []
    sender = SqsSender(fake, "url", on_result=lambda m, e: errors.append(e), sleep=lambda _: None)
    for n in range(3):
        sender.submit(message(n))
    sender.close()
    assert errors == [None, None, None]
    assert sorted(fake.accepted) == ["body-0", "body-1", "body-2"]


def test_unreachable_endpoint_marks_the_sender_broken() -> None:
    class Down:
        def send_message_batch(self, **_: Any) -> dict[str, Any]:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    errors: list[str | None] = []
    sender = SqsSender(Down(), "url", on_result=lambda m, e: errors.append(e), sleep=lambda _: None)
    sender.submit(message(1))
    sender.close()
    assert sender.broken is not None and "cannot reach" in sender.broken.message
    assert errors and errors[0] is not None and "cannot reach" in errors[0]


@pytest.mark.parametrize(
    ("attempts", "ceilings"), [(5, [0.05, 0.1, 0.2, 0.4]), (2, [0.05]), (1, [])]
)
def test_an_entry_never_accepted_gets_every_attempt_with_growing_jittered_waits(
    attempts: int, ceilings: list[float]
) -> None:
    fake = FakeSqs(["retryable"], [])
    waits: list[float] = []
    errors: list[str | None] = []
    sender = SqsSender(
        fake,
        "url",
        on_result=lambda m, e: errors.append(e),
        entry_attempts=attempts,
        sleep=waits.append,
    )
    sender.submit(message(1))
    sender.close()
    assert fake.calls == attempts and sender.calls == attempts
    assert len(waits) == len(ceilings)  # one wait between two attempts, none after the last
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert 0 <= wait <= ceiling
    assert errors == [f"not accepted after {attempts} attempts: X: no"]


class CountingSqs:
    """Accepts every entry; records the most calls in flight at once, and says botocore
    retried each call ``retries`` times (a throttled endpoint)."""

    def __init__(self, retries: int = 0) -> None:
        self.retries = retries
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.002)  # gives the other batches a chance to overlap this one
        with self.lock:
            self.active -= 1
        return {
            "Successful": [{"Id": e["Id"], "MessageId": e["Id"]} for e in Entries],
            "Failed": [],
            "ResponseMetadata": {"RetryAttempts": self.retries},
        }


def fixed(limit: int, cap: int = 16) -> InFlight:
    """A limit that never moves by itself (its rounds never end)."""
    return InFlight(cap, tuning=Tuning(start=limit, round_s=1e9), clock=lambda: 0.0)


def test_batches_in_flight_never_pass_the_adaptive_limit() -> None:
    fake = CountingSqs()
    results: list[str | None] = []
    sender = SqsSender(fake, "url", on_result=lambda m, e: results.append(e), inflight=fixed(2))
    for n in range(200):
        sender.submit(message(n))
    sender.close()
    assert results == [None] * 200
    assert 1 <= fake.most <= 2  # the cap is 16 threads; the limit is what held them back
    assert sender.inflight.in_flight == 0


def test_a_throttled_endpoint_lowers_the_batches_in_flight() -> None:
    fake = CountingSqs(retries=2)  # botocore had to retry every call
    results: list[str | None] = []
    inflight = InFlight(16, tuning=Tuning(start=8))
    sender = SqsSender(fake, "url", on_result=lambda m, e: results.append(e), inflight=inflight)
    for n in range(100):
        sender.submit(message(n))
    sender.close()
    assert results == [None] * 100  # strained, not failed: every record confirmed
    assert inflight.decreases >= 1 and inflight.limit < 8
