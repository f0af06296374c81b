"""Three kinds of failure, three answers, on the Lambda handler (the local worker's are in
test_guard.py): a bug in some records never stops the rest, a throttled record is not
charged a try, an outage trips the guard. The handler runs in-process against moto, fed
batches the way an event source mapping feeds it (what it does not report is deleted)."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from northmigrate.aws.clients import AwsClients
from northmigrate.config import load_settings
from northmigrate.consume import lambda_handler as aws_lambda
from northmigrate.consume.probe import PROBE_EVENT, is_probe_event
from northmigrate.consume.tap import Tap, read_state
from northmigrate.control.provision import provision
from northmigrate.examples.onboarding import migration
from northmigrate.records import envelope
from tests.unit.test_lambda_handler import body, env_for, record, table_ids
from tests.unit.test_lambda_night import lambda_records


def runtime(queue: str, out: io.StringIO, **env: str) -> aws_lambda.Runtime:
    environ = env_for(queue) | env
    clients = AwsClients()
    provision(clients, load_settings(None, env=environ), migration)
    return aws_lambda.build_runtime(environ, clients=clients, out=out)


def with_handler(rt: aws_lambda.Runtime, fail: Any) -> None:
    """The plugin's handler, failing first where ``fail(record)`` raises."""
    real = rt.processor.migration

    def handler(rec: Any, ctx: Any) -> None:
        fail(rec)
        real.handler(rec, ctx)

    rt.processor.migration = dataclasses.replace(real, handler=handler)


def depth(rt: aws_lambda.Runtime, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    attrs = rt.queues.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return sum(int(attrs["Attributes"].get(name, 0)) for name in names)


def drain_like_a_mapping(rt: aws_lambda.Runtime, *, within: float = 60) -> None:
    """Receive batches of ten and invoke the handler until the main queue is empty; delete
    what the handler did not report (a function error: nothing is deleted)."""
    sqs, url = rt.queues.sqs, rt.queues.main_url()
    deadline = time.monotonic() + within
    while depth(rt, url):
        assert time.monotonic() < deadline, f"the queue did not drain: {depth(rt, url)} left"
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            VisibilityTimeout=30,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        event = lambda_records(got)
        try:
            answer = aws_lambda.handle({"Records": event}, rt)
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        except aws_lambda.BatchFailed:
            failed = {m["MessageId"] for m in got}
        for message in got:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def send(rt: aws_lambda.Runtime, numbers: range) -> None:
    url = rt.queues.main_url()
    for n in numbers:
        rt.queues.sqs.send_message(QueueUrl=url, MessageBody=body(record(n)))


def letters(rt: aws_lambda.Runtime) -> list[dict[str, Any]]:
    sqs = rt.queues.sqs
    url = rt.queues.dlq_url()
    out: list[dict[str, Any]] = []
    while got := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        out += got
    return out


def events(out: io.StringIO) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    return [e for e in found if e.get("event") == "record"]


def test_a_bug_in_the_first_30_of_a_sorted_export_never_stops_the_other_90(
    mocked_aws: None,
) -> None:
    """Finding 1 of issue 25 on Lambda: defaults, max_receive_count 2."""
    out = io.StringIO()
    rt = runtime("orders", out, NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT="2")

    def province_missing(rec: Any) -> None:
        if int(rec.application_id[4:]) <= 30:
            raise ValueError("province missing")

    with_handler(rt, province_missing)
    send(rt, range(1, 121))

    drain_like_a_mapping(rt)

    assert read_state(rt.queues.sqs, rt.queues.main_url()).open
    assert rt.guard is not None and rt.guard.trip is None
    assert table_ids(rt.clients) == {f"APP-{n:06d}" for n in range(31, 121)}
    dead = letters(rt)
    assert len(dead) == 30
    for letter in dead:
        attrs = letter["MessageAttributes"]
        assert attrs[envelope.ATTR_ERROR_KIND]["StringValue"] == "record"
        assert attrs[envelope.ATTR_REASON]["StringValue"] == "ValueError: province missing"
    retried = [e for e in events(out) if e["outcome"] == "retried"]
    assert len(retried) == 30 and {e["error_kind"] for e in retried} == {"record"}
    assert max(e["backoff_s"] for e in retried) <= rt.settings.worker.record_backoff_max_s


def throttling() -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "PutItem",
    )


def test_half_of_the_answers_throttled_burns_no_record(mocked_aws: None) -> None:
    """Finding 2 of issue 25 on Lambda: with half of the target's answers
    ``ThrottlingException`` and max_receive_count 2, no record is dead-lettered."""
    out = io.StringIO()
    rt = runtime(
        "orders",
        out,
        NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT="2",
        NORTHMIGRATE_WORKER__THROTTLE_BACKOFF_S="0",
    )
    answers = iter(range(10_000))

    def every_other(rec: Any) -> None:
        if next(answers) % 2 == 0:
            raise throttling()

    with_handler(rt, every_other)
    send(rt, range(1, 41))

    drain_like_a_mapping(rt)

    assert letters(rt) == []
    assert table_ids(rt.clients) == {f"APP-{n:06d}" for n in range(1, 41)}
    throttled = [e for e in events(out) if e["error_kind"] == "throttled"]
    assert len(throttled) >= 20 and {e["outcome"] for e in throttled} == {"retried"}
    assert rt.guard is not None and rt.guard.trip is None


@pytest.mark.parametrize("attempts", [0, 1])
def test_a_throttled_try_is_not_charged(mocked_aws: None, attempts: int) -> None:
    out = io.StringIO()
    rt = runtime("orders", out, NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT="2")

    def always(rec: Any) -> None:
        raise throttling()

    with_handler(rt, always)
    event = {"messageId": "m-1", "receiptHandle": "rh", "attributes": {}, "eventSource": "x"}
    event["body"] = body(record(1), attempts=attempts)
    rt.processor.retry_delay = lambda attempt, kind="outage": 0
    answer = aws_lambda.handle({"Records": [event]}, rt)
    assert answer == {"batchItemFailures": []}  # its copy is in the main queue
    got = rt.queues.sqs.receive_message(QueueUrl=rt.queues.main_url())["Messages"]
    assert json.loads(got[0]["Body"])["attempts"] == attempts  # unchanged
    assert letters(rt) == []


def test_the_schedules_probe_reopens_a_tap_the_guard_closed_on_lambda(mocked_aws: None) -> None:
    """Finding 3 of issue 25 on Lambda: after an outage the tap opens by itself."""
    out = io.StringIO()
    rt = runtime(
        "orders",
        out,
        NORTHMIGRATE_GUARD__WINDOW="10",
        NORTHMIGRATE_GUARD__MIN_RECORDS="4",
        NORTHMIGRATE_WORKER__BACKOFF_BASE_S="0",  # the retries' copies are there to probe
    )
    url = rt.queues.main_url()
    for n in range(1, 7):  # region ON: the target is down for them (TargetUnavailable)
        rt.queues.sqs.send_message(QueueUrl=url, MessageBody=body(record(n, region="ON")))
    got = rt.queues.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    aws_lambda.handle({"Records": lambda_records(got["Messages"])}, rt)
    state = read_state(rt.queues.sqs, url)
    assert not state.open and state.closed_by_guard
    assert state.reason is not None and state.reason.startswith("outage: ")

    still_down = aws_lambda.probe(rt)
    assert still_down == {"event": "probe", "tap": "closed by the guard", "opened": False}
    assert not read_state(rt.queues.sqs, url).open
    assert letters(rt) == []  # the probed record was not charged: nothing burnt

    rt.processor.options = dict(rt.processor.options, outage_regions=[])  # the target is back
    back = aws_lambda.probe(rt)
    assert back == {"event": "probe", "tap": "open", "opened": True}
    state = read_state(rt.queues.sqs, url)
    assert state.open and state.opened is not None
    assert state.opened.startswith("guard (lambda ") and "the probe succeeded after" in state.opened
    assert rt.guard is not None and rt.guard.trip is None
    told = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["opened"] for e in told if e.get("event") == "probe"] == [False, True]


def test_the_probe_never_opens_a_tap_a_person_closed(mocked_aws: None) -> None:
    rt = runtime("orders", io.StringIO())
    Tap(rt.clients, rt.queues).close(by="operator", reason="maintenance")
    assert aws_lambda.probe(rt) == {"event": "probe", "tap": "closed by a person", "opened": False}
    assert not read_state(rt.queues.sqs, rt.queues.main_url()).open
    assert is_probe_event(PROBE_EVENT) and not is_probe_event({"Records": []})


def test_throttling_on_lambda_lowers_the_mappings_limit_by_guard(mocked_aws: None) -> None:
    out = io.StringIO()
    rt = runtime("orders", out, NORTHMIGRATE_WORKER__THROTTLE_BACKOFF_S="0")
    assert rt.guard is not None and rt.guard.throttle is not None
    now = [0.0]
    rt.guard.throttle._clock = lambda: now[0]
    rt.guard.throttle._step_at = 0.0

    def always(rec: Any) -> None:
        raise throttling()

    with_handler(rt, always)
    send(rt, range(1, 5))
    got = rt.queues.sqs.receive_message(
        QueueUrl=rt.queues.main_url(), MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    now[0] = 11.0  # a step of throttled tries
    aws_lambda.handle({"Records": lambda_records(got["Messages"])}, rt)
    state = read_state(rt.queues.sqs, rt.queues.main_url())
    # deploy.max_concurrency (10) halved: the mapping's maximum concurrency, by the guard
    assert state.open and state.limit == 5
    assert state.limit_by == "guard (lambda function)"
    assert state.limit_reason is not None and state.limit_reason.startswith("throttled: ")
    assert letters(rt) == []
