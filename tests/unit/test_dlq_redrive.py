"""Redrive on moto in-process (client-side), the native move task through botocore's
Stubber (moto answers StartMessageMoveTask with an error), and the destination lookup."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from botocore.stub import ANY, Stubber
from helpers import aws_client

from northmigrate.aws.inflight import InFlight, Tuning
from northmigrate.dlq import default_destination, native_redrive, parse_all, redrive
from northmigrate.errors import AwsError, InputError
from northmigrate.records import envelope

NOW = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)


def queues(sqs: Any, fifo: bool = False) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    attrs = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"work-dlq{suffix}", Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    main = sqs.create_queue(
        QueueName=f"work{suffix}",
        Attributes={
            **attrs,
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    return main, dlq


def put(sqs: Any, url: str, n: int, reason: str | None, country: str = "CA", **kw: Any) -> None:
    env = envelope.Envelope("m", f"R-{n}", {"id": f"R-{n}", "country": country})
    attrs = envelope.attributes("m", f"R-{n}")
    attrs["custom"] = {"DataType": "String", "StringValue": f"c{n}"}
    if reason is not None:
        env.failures.append(
            envelope.failure(
                kind="permanent",
                error_class="E",
                reason=reason,
                attempt=1,
                migration="m",
                version="1",
            )
        )
        attrs[envelope.ATTR_REASON] = {"DataType": "String", "StringValue": reason}
        attrs[envelope.ATTR_FAILURE_KIND] = {"DataType": "String", "StringValue": "permanent"}
        attrs[envelope.ATTR_ERROR_KIND] = {"DataType": "String", "StringValue": "record"}
    sqs.send_message(QueueUrl=url, MessageBody=env.to_body(), MessageAttributes=attrs, **kw)


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(json.loads(m["Body"])["record_id"] for m in messages)


def fill(sqs: Any, url: str) -> None:
    for n in range(10):
        put(sqs, url, n, "ValueError: bad", country="CA" if n % 2 else "US")
    for n in range(10, 15):
        put(sqs, url, n, "TimeoutError: slow")
    for n in range(15, 18):
        put(sqs, url, n, None)


def test_redrive_moves_everything_keeping_body_and_attributes(sqs: Any) -> None:
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    report = redrive(sqs, dlq, main, wait_time_s=0, clock=lambda: NOW, concurrency=3)
    assert (report.matched, report.moved, report.skipped, report.failed) == (18, 18, 0, 0)
    assert report.to_dict()["mode"] == "client" and report.to_dict()["dry_run"] is False
    assert drain(sqs, dlq) == []
    moved = drain(sqs, main)
    assert ids(moved) == sorted(f"R-{n}" for n in range(18))
    for message in moved:
        body = json.loads(message["Body"])
        attrs = message["MessageAttributes"]
        n = int(body["record_id"][2:])
        assert body["record"] == {"id": f"R-{n}", "country": "CA" if n % 2 or n >= 10 else "US"}
        assert envelope.ATTR_REASON not in attrs and envelope.ATTR_FAILURE_KIND not in attrs
        assert envelope.ATTR_ERROR_KIND not in attrs
        assert attrs["custom"]["StringValue"] == f"c{n}"
        assert attrs[envelope.ATTR_RECORD_ID]["StringValue"] == body["record_id"]
        [entry] = body["redrives"]
        assert entry["from"] == "work-dlq" and entry["to"] == "work"
        assert entry["at"] == "2026-11-27T01:02:03.000000Z"
        if n < 15:
            assert entry["reason"] == body["failures"][-1]["reason"]
        else:
            assert entry["reason"] == "unknown" and "failures" not in body


def test_where_moves_exactly_the_matching_messages(sqs: Any) -> None:
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    report = redrive(
        sqs,
        dlq,
        main,
        conditions=parse_all(["reason~^ValueError", "record.country=CA"]),
        wait_time_s=0,
    )
    assert (report.matched, report.moved, report.skipped) == (5, 5, 13)
    assert ids(drain(sqs, main)) == ["R-1", "R-3", "R-5", "R-7", "R-9"]
    assert len(drain(sqs, dlq)) == 13  # the rest is visible again at once


def test_max_moves_exactly_n_even_with_several_threads(sqs: Any) -> None:
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    report = redrive(sqs, dlq, main, max_messages=7, wait_time_s=0, concurrency=4)
    assert report.moved == 7 and report.ended == "max"
    assert len(drain(sqs, main)) == 7
    assert len(drain(sqs, dlq)) == 11


def test_dry_run_moves_nothing_and_leaves_everything_visible(sqs: Any) -> None:
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    report = redrive(
        sqs, dlq, main, conditions=parse_all(["reason=unknown"]), dry_run=True, wait_time_s=0
    )
    assert (report.matched, report.moved, report.skipped) == (3, 0, 15)
    assert report.to_dict()["dry_run"] is True
    assert drain(sqs, main) == []
    assert len(drain(sqs, dlq)) == 18


def test_rate_paces_the_moves(sqs: Any) -> None:
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    report = redrive(
        sqs,
        dlq,
        main,
        rate=2.0,
        wait_time_s=0,
        concurrency=1,
        sleep=sleep,
        monotonic=lambda: clock[0],
    )
    assert report.moved == 18
    assert clock[0] >= (18 - 2) / 2.0  # the bucket's start-up token aside, 2 a second


def test_fifo_keeps_the_group_and_a_later_redrive_is_not_deduplicated(sqs: Any) -> None:
    main, dlq = queues(sqs, fifo=True)
    put(sqs, dlq, 1, "E: x", MessageGroupId="g-1", MessageDeduplicationId="d1")
    put(sqs, dlq, 2, "E: x", MessageGroupId="g-2", MessageDeduplicationId="d2")
    assert redrive(sqs, dlq, main, wait_time_s=0).moved == 2
    first = drain(sqs, main)
    assert {m["Attributes"]["MessageGroupId"] for m in first} == {"g-1", "g-2"}
    # dead again, same message ids' content: the second redrive must reach the queue too
    for m in first:
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=m["Body"],
            MessageGroupId=m["Attributes"]["MessageGroupId"],
            MessageDeduplicationId=m["MessageId"],
        )
    second = redrive(sqs, dlq, main, wait_time_s=0)
    assert second.moved == 2
    again = drain(sqs, main)
    assert len(again) == 2
    assert all(len(json.loads(m["Body"])["redrives"]) == 2 for m in again)


def test_bad_arguments(sqs: Any) -> None:
    main, dlq = queues(sqs)
    with pytest.raises(InputError):
        redrive(sqs, dlq, dlq)
    with pytest.raises(InputError):
        redrive(sqs, dlq, main, max_messages=0)
    with pytest.raises(InputError):
        redrive(sqs, dlq, main, rate=0)


def test_a_missing_destination_is_an_aws_error_and_loses_nothing(sqs: Any) -> None:
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    gone = main.replace("/work", "/nowhere")
    report = redrive(sqs, dlq, gone, wait_time_s=0, concurrency=2)
    assert isinstance(report.error, AwsError) and report.ended == "error"
    assert report.moved == 0
    assert len(drain(sqs, dlq)) == 18


def test_default_destination_is_the_queue_whose_policy_names_the_dlq(sqs: Any) -> None:
    main, dlq = queues(sqs)
    assert default_destination(sqs, dlq, main) == main
    plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
    assert default_destination(sqs, dlq, plain) == main  # the one queue that names it


# -- native: StartMessageMoveTask through the Stubber ----------------------------------------

SRC = "https://sqs.us-east-1.amazonaws.com/123456789012/work-dlq"
DST = "https://sqs.us-east-1.amazonaws.com/123456789012/work"
SRC_ARN = "arn:aws:sqs:us-east-1:123456789012:work-dlq"
DST_ARN = "arn:aws:sqs:us-east-1:123456789012:work"


def stubbed() -> tuple[Any, Stubber]:
    client = aws_client(
        "sqs", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    stub = Stubber(client)
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": SRC_ARN}},
        {"QueueUrl": SRC, "AttributeNames": ["QueueArn"]},
    )
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": DST_ARN}},
        {"QueueUrl": DST, "AttributeNames": ["QueueArn"]},
    )
    return client, stub


def task(status: str, moved: int, to_move: int = 40) -> dict[str, Any]:
    return {
        "Results": [
            {
                "TaskHandle": "h-1",
                "Status": status,
                "SourceArn": SRC_ARN,
                "DestinationArn": DST_ARN,
                "ApproximateNumberOfMessagesMoved": moved,
                "ApproximateNumberOfMessagesToMove": to_move,
                "StartedTimestamp": 1,
            }
        ]
    }


def test_native_follows_the_task_to_completion() -> None:
    client, stub = stubbed()
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "h-1"},
        {"SourceArn": SRC_ARN, "DestinationArn": DST_ARN, "MaxNumberOfMessagesPerSecond": 50},
    )
    listing = {"SourceArn": SRC_ARN, "MaxResults": 1}
    stub.add_response("list_message_move_tasks", task("RUNNING", 10), listing)
    stub.add_response("list_message_move_tasks", task("COMPLETED", 40), listing)
    seen: list[int] = []
    with stub:
        report = native_redrive(
            client, SRC, DST, rate=50, poll_s=0, progress=lambda r: seen.append(r.moved)
        )
        stub.assert_no_pending_responses()
    assert seen == [10, 40]
    assert report.to_dict() | {"duration_s": 0} == report.to_dict() | {
        "source": "work-dlq",
        "destination": "work",
        "matched": 40,
        "moved": 40,
        "failed": 0,
        "mode": "native",
        "dry_run": False,
        "task_status": "COMPLETED",
        "duration_s": 0,
    }
    assert report.error is None and not report.interrupted


def test_native_cancels_the_task_when_stopped() -> None:
    client, stub = stubbed()
    stub.add_response("start_message_move_task", {"TaskHandle": "h-1"}, ANY_START)
    stub.add_response("list_message_move_tasks", task("RUNNING", 5), ANY_LIST)
    stub.add_response(
        "cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 7}, {"TaskHandle": "h-1"}
    )
    stop = threading.Event()
    with stub:
        report = native_redrive(
            client, SRC, DST, stop=stop, poll_s=0, progress=lambda r: stop.set()
        )
        stub.assert_no_pending_responses()
    assert report.interrupted and report.moved == 7 and report.task_status == "CANCELLING"


def test_native_cancels_the_task_on_a_hard_interrupt() -> None:
    client, stub = stubbed()
    stub.add_response("start_message_move_task", {"TaskHandle": "h-1"}, ANY_START)
    stub.add_response("list_message_move_tasks", task("RUNNING", 5), ANY_LIST)
    stub.add_response(
        "cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 5}, {"TaskHandle": "h-1"}
    )

    def interrupt(_: Any) -> None:
        raise KeyboardInterrupt

    with stub, pytest.raises(KeyboardInterrupt):
        native_redrive(client, SRC, DST, poll_s=0, progress=interrupt)
    stub.assert_no_pending_responses()


def test_native_reports_a_failed_task() -> None:
    client, stub = stubbed()
    stub.add_response("start_message_move_task", {"TaskHandle": "h-1"}, ANY_START)
    failed = task("FAILED", 3)
    failed["Results"][0]["FailureReason"] = "AWS.SimpleQueueService.NonExistentQueue"
    stub.add_response("list_message_move_tasks", failed, ANY_LIST)
    with stub:
        report = native_redrive(client, SRC, DST, poll_s=0)
    assert isinstance(report.error, AwsError) and "NonExistentQueue" in str(report.error)
    assert report.failed == 37 and report.moved == 3


def test_native_start_refused_is_an_aws_error() -> None:
    client, stub = stubbed()
    stub.add_client_error("start_message_move_task", "UnsupportedOperation", "not supported", 400)
    with stub, pytest.raises(AwsError) as caught:
        native_redrive(client, SRC, DST, poll_s=0)
    assert caught.value.exit_code == 3 and "StartMessageMoveTask" in str(caught.value)
    assert "\n" not in str(caught.value) and "without --native" in str(caught.value)


ANY_START = {"SourceArn": SRC_ARN, "DestinationArn": DST_ARN}
ANY_LIST = {"SourceArn": SRC_ARN, "MaxResults": ANY}


def test_dead_letters_in_flight_are_reported_not_silently_skipped(sqs: Any) -> None:
    """After a redrive killed part-way (or an interrupted inspect), messages stay hidden for
    their visibility timeout: the next redrive says so instead of a silent ``matched 0``."""
    main, dlq = queues(sqs)
    for n in range(10):
        put(sqs, dlq, n, "E: boom")
    while sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages"
    ):
        pass  # a killed reader holds all ten
    report = redrive(sqs, dlq, main, clock=lambda: NOW)
    assert (report.matched, report.moved) == (0, 0)
    assert report.in_flight == 10
    assert report.back_within_s is not None and report.back_within_s >= 300
    data = report.to_dict()
    assert (data["in_flight"], data["in_flight_back_within_s"]) == (10, report.back_within_s)
    assert report.hidden_note is not None and "10 dead letters are in flight" in report.hidden_note
    quiet = redrive(sqs, dlq, main, dry_run=True, clock=lambda: NOW)
    assert quiet.in_flight == 10 and quiet.matched == 0


class Recorded(InFlight):
    """The redrive's adaptive limit with the test's ``tuning``, kept for the test to read."""

    made: ClassVar[list[Recorded]] = []
    tuning_now = Tuning()

    def __init__(self, cap: int, **kw: Any) -> None:
        super().__init__(cap, tuning=self.tuning_now, **kw)
        self.most = 0
        Recorded.made.append(self)

    def acquire(self, stop: Any = None, poll_s: float = 0.1) -> bool:
        got = super().acquire(stop, poll_s)
        self.most = max(self.most, self.in_flight)
        return got


class Throttled:
    """The moto client, but botocore had to retry every SendMessageBatch once."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, **kw: Any) -> Any:
        response = self._sqs.send_message_batch(**kw)
        response["ResponseMetadata"]["RetryAttempts"] = 1
        return response


def test_chunks_in_flight_follow_the_adaptive_limit_not_the_threads(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["northmigrate.dlq.redrive"], "InFlight", Recorded)
    Recorded.made, Recorded.tuning_now = [], Tuning(start=1, round_s=1e9)  # it stays at 1
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    report = redrive(sqs, dlq, main, wait_time_s=0, concurrency=8)
    assert report.moved == 18 and drain(sqs, dlq) == []
    [limit] = Recorded.made
    assert limit.cap == 8 and limit.most == 1  # eight threads, one chunk at a time
    assert limit.in_flight == 0


def test_a_throttled_destination_halves_the_chunks_in_flight_and_loses_nothing(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["northmigrate.dlq.redrive"], "InFlight", Recorded)
    Recorded.made, Recorded.tuning_now = [], Tuning(start=8)
    main, dlq = queues(sqs)
    fill(sqs, dlq)
    report = redrive(Throttled(sqs), dlq, main, wait_time_s=0, concurrency=8)
    assert report.moved == 18 and report.failed == 0
    assert drain(sqs, dlq) == [] and len(drain(sqs, main)) == 18
    [limit] = Recorded.made
    assert limit.decreases >= 1 and limit.limit < 8
