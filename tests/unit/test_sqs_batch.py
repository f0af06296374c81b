"""The SQS layer's batch calls: every item ends accepted, refused or unconfirmed, exactly once;
nothing is counted accepted that SQS did not list; retries follow the policy and never wait
after the last attempt; a fatal error stops at once; a gone receipt handle is a refusal."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.aws.sqs.batch import (
    GONE_CODES,
    MAX_BATCH_ENTRIES,
    chunks,
    delete_batch,
    is_gone,
    run_batch,
    send_batch,
)
from northmigrate.aws.sqs.retry import Policy

OUTCOMES = ["ok", "retryable", "sender_fault", "gone", "missing"]
POLICY = Policy(attempts=4, base_s=0.1, max_s=2.0)


class Scripted:
    """A batch call answering each entry by a script; some calls fail as a whole."""

    def __init__(self, script: list[str], call_faults: list[bool]) -> None:
        self.script = script or ["ok"]
        self.call_faults = call_faults
        self.calls = 0
        self.accepted: list[Any] = []
        self.sizes: list[int] = []

    def __call__(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        call = self.calls
        self.calls += 1
        self.sizes.append(len(Entries))
        if self.call_faults and self.call_faults[call % len(self.call_faults)]:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "boom"}}, "Batch"
            )
        ok, failed = [], []
        for n, entry in enumerate(Entries):
            outcome = self.script[(call * 10 + n) % len(self.script)]
            if outcome == "ok":
                self.accepted.append(entry["Item"])
                ok.append({"Id": entry["Id"]})
            elif outcome == "retryable":
                failed.append({"Id": entry["Id"], "Code": "X", "SenderFault": False})
            elif outcome == "sender_fault":
                failed.append({"Id": entry["Id"], "Code": "Bad", "SenderFault": True})
            elif outcome == "gone":
                failed.append({"Id": entry["Id"], "Code": "ReceiptHandleIsInvalid"})
        return {"Successful": ok, "Failed": failed}


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(0, MAX_BATCH_ENTRIES),
    script=st.lists(st.sampled_from(OUTCOMES), max_size=12),
    call_faults=st.lists(st.booleans(), max_size=5),
)
def test_every_item_ends_in_exactly_one_place(
    count: int, script: list[str], call_faults: list[bool]
) -> None:
    call = Scripted(script, call_faults)
    waits: list[float] = []
    items = list(range(count))
    heard: list[int] = []
    result = run_batch(
        call,
        "https://sqs/1/q",
        items,
        lambda i, item: {"Id": i, "Item": item},
        policy=POLICY,
        what="Batch on",
        sleep=waits.append,
        on_accepted=heard.append,
    )
    placed = result.accepted + [i for i, _ in result.refused] + [i for i, _ in result.unconfirmed]
    assert sorted(placed) == items  # each item exactly once
    assert set(result.accepted) <= set(call.accepted)  # accepted means SQS listed it
    assert heard == result.accepted
    assert all(why for _, why in result.not_accepted)
    assert call.calls == result.calls <= POLICY.attempts
    assert len(waits) == max(0, call.calls - 1)  # a wait between attempts, none after the last
    assert all(size <= MAX_BATCH_ENTRIES for size in call.sizes)
    if result.calls < POLICY.attempts and not call_faults:
        assert result.unconfirmed == []  # it stopped early only because all was answered


def test_waits_grow_with_full_jitter_and_stop_at_the_policy() -> None:
    call = Scripted(["retryable"], [])
    waits: list[float] = []
    result = run_batch(
        call,
        "u",
        [1],
        lambda i, item: {"Id": i, "Item": item},
        policy=Policy(attempts=5, base_s=0.1, max_s=2.0),
        what="Batch on",
        sleep=waits.append,
    )
    assert call.calls == 5 and result.unconfirmed == [(1, "X")]
    for wait, ceiling in zip(waits, [0.05, 0.1, 0.2, 0.4], strict=True):
        assert 0 <= wait <= ceiling


def test_a_fatal_error_ends_the_call_at_once_and_says_why() -> None:
    calls = 0

    def down(**_: Any) -> Any:
        nonlocal calls
        calls += 1
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    result = run_batch(
        down,
        "https://sqs/1/q",
        ["a", "b"],
        lambda i, item: {"Id": i},
        policy=POLICY,
        what="Batch on",
        sleep=lambda _: None,
    )
    assert calls == 1
    assert result.error is not None and "cannot reach" in result.error.message
    assert [item for item, _ in result.unconfirmed] == ["a", "b"]


def test_a_gone_receipt_handle_is_a_refusal_not_a_retry() -> None:
    call = Scripted(["gone"], [])
    result = delete_batch(  # type: ignore[misc]
        type("Sqs", (), {"delete_message_batch": staticmethod(call)})(),
        "u",
        ["h1"],
        lambda handle: handle,
        sleep=lambda _: None,
    )
    assert call.calls == 1 and result.refused == [("h1", "ReceiptHandleIsInvalid")]
    assert "ReceiptHandleIsInvalid" in GONE_CODES
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": "ReceiptHandleIsInvalid", "Message": "x"}}, "DeleteMessage"
    )
    assert is_gone(error)


def test_send_batch_passes_the_entries_as_given(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    result = send_batch(sqs, url, ["a", "b"], lambda i, body: {"Id": i, "MessageBody": body})
    assert sorted(result.accepted) == ["a", "b"] and result.calls == 1
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["a", "b"]


@pytest.mark.parametrize("count", [0, 1, 10, 11, 25])
def test_chunks_are_at_most_ten(count: int) -> None:
    parts = chunks(list(range(count)))
    assert [x for part in parts for x in part] == list(range(count))
    assert all(1 <= len(part) <= MAX_BATCH_ENTRIES for part in parts)
