"""Property: for any interleaving of sends and deletes that succeed, fail or time out (the
call took effect but the client saw an error), the client-side redrive loses no message,
and every message it did not remove is visible in the DLQ again when it returns."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from northmigrate.dlq import parse_all, redrive
from northmigrate.records import envelope

SRC = "https://sqs.test/1/dlq"
DST = "https://sqs.test/1/main"
OUTCOMES = ("ok", "ok", "fail", "timeout", "partial", "throttled")


@dataclass
class _Message:
    message_id: str
    body: str
    attrs: dict[str, Any]
    visible: bool = True
    handle: str = ""
    receives: int = 0


class FakeSqs:
    """Two queues in memory; every send and delete call takes the next scripted outcome."""

    def __init__(self, sends: Iterator[str], deletes: Iterator[str]) -> None:
        self.queues: dict[str, dict[str, _Message]] = {SRC: {}, DST: {}}
        self.sends = sends
        self.deletes = deletes
        self.lock = threading.Lock()

    def put(self, url: str, body: str, attrs: dict[str, Any] | None = None) -> str:
        message_id = str(uuid.uuid4())
        self.queues[url][message_id] = _Message(message_id, body, attrs or {})
        return message_id

    @staticmethod
    def _error(op: str) -> botocore.exceptions.ClientError:
        return botocore.exceptions.ClientError(
            {"Error": {"Code": "InternalError", "Message": "try again"}}, op
        )

    def receive_message(self, *, QueueUrl: str, MaxNumberOfMessages: int, **_: Any) -> Any:
        with self.lock:
            out = []
            for m in self.queues[QueueUrl].values():
                if len(out) >= MaxNumberOfMessages:
                    break
                if m.visible:
                    m.visible = False
                    m.receives += 1
                    m.handle = str(uuid.uuid4())
                    out.append(
                        {
                            "MessageId": m.message_id,
                            "ReceiptHandle": m.handle,
                            "Body": m.body,
                            "Attributes": {"ApproximateReceiveCount": str(m.receives)},
                            "MessageAttributes": m.attrs,
                        }
                    )
            return {"Messages": out}

    def get_queue_attributes(self, *, QueueUrl: str, AttributeNames: list[str]) -> Any:
        with self.lock:
            messages = list(self.queues[QueueUrl].values())
        visible = sum(m.visible for m in messages)
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(len(messages) - visible),
                "ApproximateNumberOfMessagesDelayed": "0",
                "VisibilityTimeout": "30",
            }
        }

    def change_message_visibility_batch(self, *, QueueUrl: str, Entries: list[Any]) -> Any:
        with self.lock:
            ok, failed = [], []
            by_handle = {m.handle: m for m in self.queues[QueueUrl].values()}
            for e in Entries:
                m = by_handle.get(e["ReceiptHandle"])
                if m is None:
                    failed.append(
                        {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True}
                    )
                else:
                    m.visible = e["VisibilityTimeout"] == 0 or m.visible
                    ok.append({"Id": e["Id"]})
            return {"Successful": ok, "Failed": failed}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[Any]) -> Any:
        outcome = next(self.sends, "ok")
        if outcome == "fail":
            raise self._error("SendMessageBatch")
        with self.lock:
            ok, failed = [], []
            for i, e in enumerate(Entries):
                if outcome == "partial" and i % 2:
                    failed.append({"Id": e["Id"], "Code": "InternalError", "SenderFault": False})
                    continue
                if outcome == "throttled" and i == 0:
                    failed.append(
                        {"Id": e["Id"], "Code": "InvalidMessageContents", "SenderFault": True}
                    )
                    continue
                message_id = self.put(QueueUrl, e["MessageBody"], e.get("MessageAttributes"))
                ok.append({"Id": e["Id"], "MessageId": message_id})
        if outcome == "timeout":
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=QueueUrl)
        return {"Successful": ok, "Failed": failed}

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[Any]) -> Any:
        outcome = next(self.deletes, "ok")
        if outcome == "fail":
            raise self._error("DeleteMessageBatch")
        with self.lock:
            ok, failed = [], []
            queue = self.queues[QueueUrl]
            by_handle = {m.handle: m for m in queue.values()}
            for i, e in enumerate(Entries):
                m = by_handle.get(e["ReceiptHandle"])
                if m is None:
                    failed.append(
                        {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True}
                    )
                elif outcome == "partial" and i % 2:
                    failed.append({"Id": e["Id"], "Code": "InternalError", "SenderFault": False})
                else:
                    del queue[m.message_id]
                    ok.append({"Id": e["Id"]})
        if outcome == "timeout":
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=QueueUrl)
        return {"Successful": ok, "Failed": failed}

    def records(self, url: str) -> set[str]:
        return {envelope.parse(m.body).record_id for m in self.queues[url].values()}


def body(n: int) -> tuple[str, dict[str, Any]]:
    env = envelope.Envelope("m", f"R-{n}", {"id": f"R-{n}", "even": n % 2 == 0})
    reason = "E: even" if n % 2 == 0 else "E: odd"
    attrs = envelope.attributes("m", f"R-{n}")
    attrs[envelope.ATTR_REASON] = {"DataType": "String", "StringValue": reason}
    return env.to_body(), attrs


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(min_value=1, max_value=35),
    sends=st.lists(st.sampled_from(OUTCOMES), max_size=30),
    deletes=st.lists(st.sampled_from(OUTCOMES), max_size=30),
    max_messages=st.none() | st.integers(min_value=1, max_value=40),
    filtered=st.booleans(),
)
def test_no_message_is_lost(
    count: int, sends: list[str], deletes: list[str], max_messages: int | None, filtered: bool
) -> None:
    sqs = FakeSqs(iter(sends), iter(deletes))
    for n in range(count):
        sqs.put(SRC, *body(n))
    everything = {f"R-{n}" for n in range(count)}
    conditions = parse_all(["reason=E: even"]) if filtered else []

    report = redrive(
        sqs,
        SRC,
        DST,
        conditions=conditions,
        max_messages=max_messages,
        concurrency=1,
        wait_time_s=0,
        sleep=lambda _: None,
    )

    assert report.error is None
    in_src, in_dst = sqs.records(SRC), sqs.records(DST)
    assert everything <= in_src | in_dst  # none in neither
    assert all(m.visible for m in sqs.queues[SRC].values())  # nothing left hidden
    assert report.matched == report.moved + report.failed
    assert report.read == report.matched + report.skipped
    left_dlq = everything - in_src
    assert left_dlq <= in_dst  # deleted only once the destination confirmed
    # a delete not confirmed may still have happened (a timeout): in both queues, or moved
    assert report.moved - report.delete_failed <= len(left_dlq) <= report.moved
    if max_messages is not None:
        assert report.moved <= max_messages
    eligible = {f"R-{n}" for n in range(count) if not filtered or n % 2 == 0}
    assert in_dst <= eligible  # nothing unmatched moved
    if not sends and not deletes:  # no faults: every eligible message moved, up to --max
        assert len(left_dlq) == min(len(eligible), max_messages or len(eligible))


def test_the_fake_scripts_outcomes_in_order() -> None:
    sqs = FakeSqs(iter(["timeout"]), itertools.repeat("ok"))
    sqs.put(SRC, *body(0))
    report = redrive(sqs, SRC, DST, concurrency=1, wait_time_s=0, sleep=lambda _: None)
    # the send took effect, the client saw a timeout and sent again: a duplicate, no loss
    assert report.moved == 1 and len(sqs.queues[DST]) == 2 and not sqs.queues[SRC]
