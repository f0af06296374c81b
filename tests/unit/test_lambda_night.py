"""A production night on Lambda: one event per record outcome, EMF metrics CloudWatch accepts,
retries backed off in place, the guard closing the tap, a batch that fails whole, and FIFO
group parity with the local worker."""

from __future__ import annotations

import dataclasses
import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from botocore.stub import Stubber
from helpers import aws_client
from support.doubles import Settled

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.message import normalise
from northmigrate.config import load_settings
from northmigrate.consume import lambda_handler as aws_lambda
from northmigrate.consume.metrics import emf_documents
from northmigrate.consume.processing import Outcome, Status
from northmigrate.consume.tap import Tap, TapState
from northmigrate.consume.worker.dispatcher import Dispatcher
from northmigrate.control.provision import provision
from northmigrate.examples.onboarding import migration
from northmigrate.plugin import PermanentError
from northmigrate.records import envelope
from tests.support.emf import assert_emf
from tests.unit.test_lambda_handler import body, env_for, record, sqs_record

RECORD_FIELDS = {
    "event", "migration", "run_id", "record_id", "message_id", "attempt", "outcome",
    "failure_kind", "error_kind", "reason", "backoff_s", "duration_ms", "consumer", "request_id",
}  # fmt: skip


def runtime(queue: str, out: io.StringIO, **env: str) -> aws_lambda.Runtime:
    environ = env_for(queue) | env
    clients = AwsClients()
    provision(clients, load_settings(None, env=environ), migration)
    return aws_lambda.build_runtime(environ, clients=clients, out=out)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def delivered(rt: aws_lambda.Runtime, bodies: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Send the bodies (with their FIFO groups) and receive them as Lambda's SQS event records,
    with real receipt handles."""
    sqs, url = rt.queues.sqs, rt.queues.main_url()
    for text, group in bodies:
        fifo = (
            {"MessageGroupId": group, "MessageDeduplicationId": uuid.uuid4().hex} if group else {}
        )
        sqs.send_message(QueueUrl=url, MessageBody=text, **fifo)  # type: ignore[arg-type]
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(got) < len(bodies):
        assert time.monotonic() < deadline, f"received {len(got)} of {len(bodies)}"
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            VisibilityTimeout=30,
            WaitTimeSeconds=0,
        )
        got += answer.get("Messages", [])
    return lambda_records(got)


def lambda_records(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages as ReceiveMessage gives them, as the records of Lambda's SQS event."""
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }
        for m in messages
    ]


def visible_now(rt: aws_lambda.Runtime) -> set[str]:
    got = rt.queues.sqs.receive_message(
        QueueUrl=rt.queues.main_url(),
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
    )
    return {m["MessageId"] for m in got.get("Messages", [])}


# -- logs --------------------------------------------------------------------------------------


def test_one_event_per_record_outcome_and_one_summary_per_invocation(mocked_aws: None) -> None:
    out = io.StringIO()
    rt = runtime("orders", out)
    rt.processor.retry_delay = lambda attempt, kind="outage": 7
    records = [
        sqs_record(body(record(1))),
        sqs_record(body(record(2, region="ON"))),  # retried: a delayed copy
        sqs_record(body(record(3, business_type="partnership"))),  # dead-lettered
        sqs_record(body(record(4, region="ON"), attempts=2)),  # its last try: exhausted
    ]
    aws_lambda.handle({"Records": records}, rt, request_id="req-1")
    events = lines(out)
    per_record = [e for e in events if e.get("event") == "record"]
    assert len(per_record) == 4
    assert all(set(e) == RECORD_FIELDS for e in per_record)
    by_id = {e["record_id"]: e for e in per_record}
    assert by_id["APP-000001"]["outcome"] == "migrated"
    assert by_id["APP-000001"]["failure_kind"] is None and by_id["APP-000001"]["reason"] is None
    retried = by_id["APP-000002"]
    assert retried["outcome"] == "retried" and retried["backoff_s"] == 7
    assert retried["failure_kind"] == "retry" and retried["attempt"] == 1
    assert retried["reason"].startswith("TargetUnavailable")
    assert by_id["APP-000003"]["outcome"] == "dead_lettered"
    assert by_id["APP-000003"]["failure_kind"] == "permanent"
    assert by_id["APP-000004"]["failure_kind"] == "exhausted"
    assert by_id["APP-000004"]["attempt"] == 3
    for e in per_record:
        assert e["migration"] == migration.name and e["consumer"] == "lambda"
        assert e["request_id"] == "req-1" and e["duration_ms"] >= 0
        assert e["message_id"] in {r["messageId"] for r in records}
    [summary] = [e for e in events if e.get("event") == "invocation"]
    assert summary["request_id"] == "req-1" and summary["received"] == 4
    assert (summary["migrated"], summary["retried"], summary["dead_lettered"]) == (1, 1, 2)
    assert summary["batch_item_failures"] == 0 and summary["guard"] is None


def test_a_sensitive_value_in_a_failure_never_reaches_the_event(mocked_aws: None) -> None:
    out = io.StringIO()
    rt = runtime("orders", out)
    rec = record(1)
    owner = rec["owners"][0]

    def careless(record: Any, ctx: Any) -> None:
        raise PermanentError(f"refused {owner['tax_id']} born {owner['date_of_birth']}")

    rt.processor.migration = dataclasses.replace(migration, handler=careless)
    aws_lambda.handle({"Records": [sqs_record(body(rec))]}, rt)
    [event] = [e for e in lines(out) if e.get("event") == "record"]
    assert event["outcome"] == "dead_lettered" and event["reason"].startswith("PermanentError")
    text = out.getvalue()
    for value in (owner["tax_id"], owner["date_of_birth"]):
        assert value not in text


# -- metrics -----------------------------------------------------------------------------------


def test_the_schema_refuses_what_cloudwatch_would() -> None:
    good = emf_documents("m", Counter(Migrated=1), Counter(), [])[0]
    assert_emf(good)
    for broken in (
        {k: v for k, v in good.items() if k != "_aws"},
        {**good, "_aws": {**good["_aws"], "Timestamp": "now"}},
        {**good, "Migrated": "one"},
        {**good, "Migration": 3},
        {**good, "Migrated": list(range(101))},
    ):
        with pytest.raises((jsonschema.ValidationError, AssertionError)):
            assert_emf(broken)


def test_the_handler_writes_emf_that_cloudwatch_accepts(mocked_aws: None) -> None:
    out = io.StringIO()
    rt = runtime("orders", out)
    rt.processor.retry_delay = lambda attempt, kind="outage": 0
    records = [sqs_record(body(record(n))) for n in range(1, 120)]  # more durations than 100
    records += [
        sqs_record(body(record(200, region="ON"))),
        sqs_record(body(record(201, business_type="partnership"))),
        sqs_record("not an envelope"),
    ]
    aws_lambda.handle({"Records": records}, rt)
    documents = [e for e in lines(out) if "_aws" in e]
    for document in documents:
        assert_emf(document)
    main = next(d for d in documents if "Migrated" in d)
    assert main["Migration"] == migration.name and main["Migrated"] == 119
    assert main["Retried"] == 1 and len(main["HandlerDuration"]) == 100
    durations = [v for d in documents for v in d.get("HandlerDuration", [])]
    assert len(durations) == 122  # every record's, 100 to a document
    dead = {d["FailureKind"]: d["DeadLettered"] for d in documents if "DeadLettered" in d}
    assert dead == {"permanent": 1, "unreadable": 1}
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "northmigrate" for d in documents)


# -- patience ----------------------------------------------------------------------------------


def test_a_fifo_retry_is_hidden_for_its_backoff(mocked_aws: None) -> None:
    out = io.StringIO()
    rt = runtime(
        "orders.fifo",
        out,
        NORTHMIGRATE_WORKER__BACKOFF_BASE_S="40",
        NORTHMIGRATE_QUEUE__VISIBILITY_TIMEOUT="120",
    )
    event = delivered(rt, [(body(record(1, region="ON")), "g"), (body(record(2)), "h")])
    hidden: list[dict[str, Any]] = []
    sqs = rt.queues.sqs
    real = sqs.change_message_visibility_batch

    def record_change(**request: Any) -> Any:
        hidden.extend(request["Entries"])
        return real(**request)

    sqs.change_message_visibility_batch = record_change  # type: ignore[method-assign]
    response = aws_lambda.handle({"Records": event}, rt)
    failing = next(r for r in event if json.loads(r["body"])["record_id"] == "APP-000001")
    assert response == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    [change] = hidden
    assert change["ReceiptHandle"] == failing["receiptHandle"]
    assert 20 <= change["VisibilityTimeout"] <= 40  # attempt 1: between half and all of 40 s
    [retried] = [e for e in lines(out) if e.get("outcome") == "retried"]
    assert retried["backoff_s"] == change["VisibilityTimeout"]
    assert visible_now(rt) == set()  # backing off, not back at once


def test_a_retry_whose_copy_sqs_refused_backs_off_in_place(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    rt = runtime("orders", out, NORTHMIGRATE_WORKER__BACKOFF_BASE_S="30")
    event = delivered(rt, [(body(record(1, region="ON")), None), (body(record(2)), None)])

    def refuse(**request: Any) -> Any:
        raise rt.processor.sqs.exceptions.QueueDoesNotExist({"Error": {"Code": "X"}}, "Send")

    monkeypatch.setattr(rt.processor.sqs, "send_message", refuse)
    response = aws_lambda.handle({"Records": event}, rt)
    assert len(response["batchItemFailures"]) == 1
    [retried] = [e for e in lines(out) if e.get("outcome") == "retried"]
    assert 15 <= retried["backoff_s"] <= 30
    assert visible_now(rt) == set()


def test_a_batch_that_fails_whole_is_a_function_error_and_loses_nothing(
    mocked_aws: None,
) -> None:
    """AWS: a function error makes the mapping poll less; a partial batch failure does not."""
    out = io.StringIO()
    rt = runtime("orders.fifo", out, NORTHMIGRATE_GUARD__ENABLED="false")
    event = delivered(rt, [(body(record(n, region="ON")), f"g{n}") for n in (1, 2)])
    with pytest.raises(aws_lambda.BatchFailed, match="every record of the batch failed"):
        aws_lambda.handle({"Records": event}, rt, request_id="req-2")
    [summary] = [e for e in lines(out) if e.get("event") == "invocation"]
    assert summary["retried"] == 2 and summary["batch_item_failures"] == 2  # told first
    rt.queues.sqs.change_message_visibility_batch(
        QueueUrl=rt.queues.main_url(),
        Entries=[
            {"Id": str(n), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 0}
            for n, r in enumerate(event)
        ],
    )
    assert visible_now(rt) == {r["messageId"] for r in event}  # both still in the queue


def test_a_batch_of_dead_letters_is_no_function_error(mocked_aws: None) -> None:
    out = io.StringIO()
    rt = runtime("orders.fifo", out)
    records = [sqs_record(body(record(1, business_type="partnership")), group="g")]
    assert aws_lambda.handle({"Records": records}, rt) == {"batchItemFailures": []}


# -- the guard ---------------------------------------------------------------------------------


MAPPING = "a1b2c3d4-0000-4000-8000-00000000e5f6"


@pytest.fixture
def lambda_stub() -> Iterator[Stubber]:
    client = aws_client("lambda", region_name="us-east-1")
    with Stubber(client) as stub:
        yield stub


def test_the_guard_on_lambda_closes_the_tap_and_disables_its_own_mapping(
    mocked_aws: None, lambda_stub: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-worker")
    rt = runtime(
        "orders.fifo",
        out,
        NORTHMIGRATE_GUARD__WINDOW="10",
        NORTHMIGRATE_GUARD__MIN_RECORDS="4",
        NORTHMIGRATE_GUARD__FAILURE_SHARE="0.5",
        NORTHMIGRATE_GUARD__MAPPING_UUID=MAPPING,
        AWS_LAMBDA_FUNCTION_NAME="orders-worker",
    )
    real_client = rt.clients.client
    monkeypatch.setattr(
        rt.clients,
        "client",
        lambda name: lambda_stub.client if name == "lambda" else real_client(name),  # type: ignore[arg-type, return-value]
    )
    lambda_stub.add_response(
        "update_event_source_mapping",
        {"UUID": MAPPING, "State": "Disabling"},
        {"UUID": MAPPING, "Enabled": False},
    )
    # Five groups: the first four fail (the target is down), then the guard has seen enough.
    bodies = [(body(record(n, region="ON")), f"g{n}") for n in range(1, 5)]
    bodies += [(body(record(n)), f"g{n}") for n in range(5, 9)]
    event = sorted(delivered(rt, bodies), key=lambda r: json.loads(r["body"])["record_id"])
    with pytest.raises(aws_lambda.BatchFailed):  # four retries, four not started
        aws_lambda.handle({"Records": event}, rt, request_id="req-3")
    lambda_stub.assert_no_pending_responses()
    tags = rt.queues.sqs.list_queue_tags(QueueUrl=rt.queues.main_url())["Tags"]
    state = TapState.from_tags(tags)
    assert not state.open and state.closed_by_guard
    assert state.closed_by == "guard (lambda orders-worker)"
    assert state.reason == "outage: 4 of the last 4 records failed: TargetUnavailable (4)"
    events = lines(out)
    released = [e for e in events if e.get("outcome") == "released"]
    assert len(released) == 4  # not started: visible again at once, nothing lost
    [summary] = [e for e in events if e.get("event") == "invocation"]
    assert summary["guard"] == state.reason and summary["batch_item_failures"] == 8
    assert visible_now(rt) == {r["messageId"] for r in event[4:]}


def test_a_warm_container_whose_guard_tripped_starts_again_once_the_tap_is_open(
    mocked_aws: None,
) -> None:
    out = io.StringIO()
    rt = runtime(
        "orders.fifo", out, NORTHMIGRATE_GUARD__WINDOW="10", NORTHMIGRATE_GUARD__MIN_RECORDS="2"
    )
    failing = delivered(rt, [(body(record(n, region="ON")), f"g{n}") for n in (1, 2)])
    with pytest.raises(aws_lambda.BatchFailed):
        aws_lambda.handle({"Records": failing}, rt)
    assert rt.guard is not None and rt.guard.trip is not None
    assert not TapState.from_tags(
        rt.queues.sqs.list_queue_tags(QueueUrl=rt.queues.main_url())["Tags"]
    ).open

    later = delivered(rt, [(body(record(3)), "g3")])
    response = aws_lambda.handle({"Records": later}, rt)  # the tap is closed: handed back
    assert response == {"batchItemFailures": [{"itemIdentifier": later[0]["messageId"]}]}

    Tap(rt.clients, rt.queues).open()  # the operator
    again = delivered(rt, [(body(record(4)), "g4")])
    assert aws_lambda.handle({"Records": again}, rt) == {"batchItemFailures": []}
    assert rt.guard.trip is None  # a new window


def test_a_guard_deployed_from_a_template_finds_its_own_mapping(
    mocked_aws: None, lambda_stub: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No mapping UUID in the environment (a stack cannot pass it): the guard lists the
    mappings of this function on this queue, and disables each."""
    rt = runtime(
        "orders.fifo",
        io.StringIO(),
        NORTHMIGRATE_GUARD__WINDOW="10",
        NORTHMIGRATE_GUARD__MIN_RECORDS="2",
        AWS_LAMBDA_FUNCTION_NAME="orders-fifo-worker",
    )
    real_client = rt.clients.client
    monkeypatch.setattr(
        rt.clients,
        "client",
        lambda name: lambda_stub.client if name == "lambda" else real_client(name),  # type: ignore[arg-type, return-value]
    )
    arn = rt.queues.sqs.get_queue_attributes(
        QueueUrl=rt.queues.main_url(), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    lambda_stub.add_response(
        "list_event_source_mappings",
        {"EventSourceMappings": [{"UUID": MAPPING}]},
        {"EventSourceArn": arn, "FunctionName": "orders-fifo-worker"},
    )
    lambda_stub.add_response(
        "update_event_source_mapping", {"UUID": MAPPING}, {"UUID": MAPPING, "Enabled": False}
    )
    event = delivered(rt, [(body(record(n, region="ON")), f"g{n}") for n in (1, 2)])
    with pytest.raises(aws_lambda.BatchFailed):
        aws_lambda.handle({"Records": event}, rt)
    lambda_stub.assert_no_pending_responses()


def test_a_guard_that_cannot_close_the_tap_still_hands_the_batch_back(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    rt = runtime(
        "orders.fifo",
        out,
        NORTHMIGRATE_GUARD__WINDOW="10",
        NORTHMIGRATE_GUARD__MIN_RECORDS="2",
        NORTHMIGRATE_GUARD__FAILURE_SHARE="0.5",
    )

    def refuse(**request: Any) -> Any:
        raise rt.queues.sqs.exceptions.ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "no"}}, "TagQueue"
        )

    monkeypatch.setattr(rt.queues.sqs, "tag_queue", refuse)
    bodies = [(body(record(n, region="ON")), f"g{n}") for n in (1, 2)] + [(body(record(3)), "g3")]
    event = sorted(delivered(rt, bodies), key=lambda r: json.loads(r["body"])["record_id"])
    with pytest.raises(aws_lambda.BatchFailed):
        aws_lambda.handle({"Records": event}, rt)
    assert visible_now(rt) == {event[2]["messageId"]}  # the unstarted one, back at once


# -- FIFO parity with the local worker ------------------------------------------------------


class Scripted:
    """A processor that fails the scripted message ids and migrates the rest."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.ran: list[str] = []

    def process(self, raw: Any) -> Outcome:
        message = normalise(raw)
        self.ran.append(message.message_id)
        status = Status.RETRY if message.message_id in self.failing else Status.SUCCEEDED
        return Outcome(status, message)


# One batch: group a fails at its second message, group b never, group c at its first.
BATCH = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c"), ("a3", "a"), ("b2", "b"), ("c2", "c")]
FAILING = {"a2", "c1"}


def test_fifo_parity_a_failure_holds_back_only_its_group_on_both_paths() -> None:
    records = [sqs_record("x", group=group) | {"messageId": mid} for mid, group in BATCH]

    worker_script, settled = Scripted(FAILING), Settled()
    pool = Dispatcher(
        worker_script,  # type: ignore[arg-type]
        settled,  # type: ignore[arg-type]
        concurrency=1,
        fifo=True,
        stopping=lambda: False,
    )
    assert pool.accept([normalise(r) for r in records])
    for group in ("a", "b", "c"):
        pool._run_group(group)
    worker_left = {o.message.message_id for o in settled.outcomes if not o.delete}
    worker_left |= set(settled.handed_back)

    lambda_script = Scripted(FAILING)
    settings = load_settings(None, env=env_for("orders.fifo"))
    rt = aws_lambda.Runtime(settings, None, migration, lambda_script, None)  # type: ignore[arg-type]
    batch = aws_lambda._Batch(rt, records)
    batch.run(lambda: True)
    lambda_left = set(batch.failed_ids())

    assert sorted(worker_script.ran) == sorted(lambda_script.ran) == ["a1", "a2", "b1", "b2", "c1"]
    assert worker_left == lambda_left == {"a2", "a3", "c1", "c2"}
    assert [r for r in lambda_script.ran if r.startswith("a")] == ["a1", "a2"]  # in order


def test_an_attribute_named_like_the_record_id_is_kept(mocked_aws: None) -> None:
    """The released event names the record from its message attribute."""
    out = io.StringIO()
    rt = runtime("orders.fifo", out, NORTHMIGRATE_GUARD__ENABLED="false")
    held = sqs_record(body(record(2)), group="g")
    held["messageAttributes"] = {
        envelope.ATTR_RECORD_ID: {"stringValue": "APP-000002", "dataType": "String"}
    }
    records = [sqs_record(body(record(1, region="ON")), group="g"), held]
    with pytest.raises(aws_lambda.BatchFailed):
        aws_lambda.handle({"Records": records}, rt)
    [released] = [e for e in lines(out) if e.get("outcome") == "released"]
    assert released["record_id"] == "APP-000002" and released["message_id"] == held["messageId"]
