"""The Lambda handler: the shared per-record path, batchItemFailures, FIFO order, time left."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import botocore.exceptions
import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.config import load_settings
from northmigrate.consume import lambda_handler as aws_lambda
from northmigrate.control.provision import provision
from northmigrate.examples.onboarding import migration
from northmigrate.records import envelope
from northmigrate.records.sample import generate

BASE = next(iter(generate(1, seed=3)))


def record(n: int, *, region: str = "BC", business_type: str = "llc") -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["application_id"] = f"APP-{n:06d}"
    out["status"] = "approved"
    out["business"]["address"].update(region=region, country="CA")
    out["business"]["business_type"] = business_type
    return out


def sqs_record(body: str, *, receive_count: int = 1, group: str | None = None) -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1"}
    if group:
        attributes["MessageGroupId"] = group
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh-" + uuid.uuid4().hex,
        "body": body,
        "attributes": attributes,
        "messageAttributes": {
            envelope.ATTR_RECORD_ID: {"stringValue": "x", "dataType": "String"},
        },
        "eventSource": "aws:sqs",
    }


def body(rec: dict[str, Any], *, attempts: int = 0) -> str:
    return envelope.Envelope(
        migration=migration.name, record_id=rec["application_id"], record=rec, attempts=attempts
    ).to_body()


def env_for(queue: str) -> dict[str, str]:
    return {
        "NORTHMIGRATE_QUEUE__NAME": queue,
        "NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT": "3",
        "NORTHMIGRATE_MIGRATION__PLUGIN": "northmigrate.examples.onboarding:migration",
        "NORTHMIGRATE_MIGRATION__OPTIONS": '{table = "target", outage_regions = ["ON"], '
        'unsupported_business_types = ["partnership"]}',
        "NORTHMIGRATE_WORKER__CONCURRENCY": "4",
    }


def runtime_for(queue: str) -> aws_lambda.Runtime:
    env = env_for(queue)
    clients = AwsClients()
    provision(clients, load_settings(None, env=env), migration)
    return aws_lambda.build_runtime(env, clients=clients)


def table_ids(clients: AwsClients) -> set[str]:
    items = clients.client("dynamodb").scan(TableName="target")["Items"]
    return {item["application_id"]["S"] for item in items}


def dead_letters(rt: aws_lambda.Runtime) -> dict[str, str]:
    sqs = rt.clients.client("sqs")
    url = sqs.get_queue_url(QueueName=rt.settings.queue.dead_letter_name)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    out = {}
    for message in got.get("Messages", []):
        reason = message["MessageAttributes"][envelope.ATTR_REASON]["StringValue"]
        try:
            out[json.loads(message["Body"])["record_id"]] = reason
        except (ValueError, KeyError):
            out[message["Body"]] = reason
    return out


def main_queue_copies(rt: aws_lambda.Runtime) -> list[dict[str, Any]]:
    """The envelopes of the retry copies in the main queue."""
    sqs = rt.clients.client("sqs")
    url = sqs.get_queue_url(QueueName=rt.settings.queue.name)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_standard_batch_requeues_retries_and_reports_no_failure(mocked_aws: None) -> None:
    rt = runtime_for("orders")
    ok = sqs_record(body(record(1)))
    # Received many times (peeks, throttled polls) but never tried: not an attempt.
    transient = sqs_record(body(record(2, region="ON")), receive_count=50)
    exhausted = sqs_record(body(record(3, region="ON"), attempts=2))
    permanent = sqs_record(body(record(4, business_type="partnership")))
    unreadable = sqs_record("not json at all")
    event = {"Records": [ok, transient, exhausted, permanent, unreadable]}
    rt.processor.retry_delay = lambda attempt, kind="outage": 0  # the copy is receivable at once

    response = aws_lambda.handle(event, rt)

    # The retry is a delayed copy in the main queue (confirmed by SQS), so the original may
    # be deleted by the mapping: nothing for it to redeliver.
    assert response == {"batchItemFailures": []}
    [copy_] = main_queue_copies(rt)
    assert (copy_["record_id"], copy_["attempts"]) == ("APP-000002", 1)
    assert copy_["record"] == record(2, region="ON")
    assert copy_["failures"][-1]["kind"] == "retry"
    assert copy_["origin"]["message_id"] == transient["messageId"]
    assert table_ids(rt.clients) == {"APP-000001"}
    dead = dead_letters(rt)
    assert set(dead) == {"APP-000003", "APP-000004", "not json at all"}
    assert dead["APP-000003"].startswith("TargetUnavailable: onboarding service unavailable")
    assert dead["APP-000004"] == (
        "PermanentError: the new service does not accept business_type 'partnership' yet"
    )
    assert dead["not json at all"] == "EnvelopeError: message body is not JSON"


def test_a_retry_whose_copy_cannot_be_sent_is_reported_to_the_mapping(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime_for("orders")
    transient = sqs_record(body(record(2, region="ON")))
    real = rt.processor.sqs.send_message

    def refuse_main_queue(**request: Any) -> Any:
        if request["QueueUrl"] == rt.processor.queue_url:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://sqs")
        return real(**request)

    monkeypatch.setattr(rt.processor.sqs, "send_message", refuse_main_queue)
    ok = sqs_record(body(record(1)))
    response = aws_lambda.handle({"Records": [ok, transient]}, rt)
    assert response == {"batchItemFailures": [{"itemIdentifier": transient["messageId"]}]}
    with pytest.raises(aws_lambda.BatchFailed):  # alone, it is a function error
        aws_lambda.handle({"Records": [transient]}, rt)


def test_fifo_holds_back_only_the_failed_group(mocked_aws: None) -> None:
    """A failure holds back the later records of its own message group; the other groups go
    on (the local worker's rule; Powertools' ``skip_group_on_error``)."""
    rt = runtime_for("orders.fifo")
    records = [
        sqs_record(body(record(1)), group="g"),
        sqs_record(body(record(2, region="ON")), group="g"),
        sqs_record(body(record(3)), group="h"),
        sqs_record(body(record(4)), group="g"),
        sqs_record(body(record(5)), group="h"),
    ]
    response = aws_lambda.handle({"Records": records}, rt)
    assert response["batchItemFailures"] == [
        {"itemIdentifier": records[1]["messageId"]},
        {"itemIdentifier": records[3]["messageId"]},  # behind the failure in its group
    ]
    assert table_ids(rt.clients) == {"APP-000001", "APP-000003", "APP-000005"}


def test_a_fifo_dead_letter_is_not_a_failure(mocked_aws: None) -> None:
    rt = runtime_for("orders.fifo")
    records = [
        sqs_record(body(record(1, business_type="partnership")), group="g"),
        sqs_record(body(record(2)), group="g"),
    ]
    assert aws_lambda.handle({"Records": records}, rt) == {"batchItemFailures": []}
    assert table_ids(rt.clients) == {"APP-000002"}


def test_records_are_not_started_when_the_invocation_is_about_to_time_out(mocked_aws: None) -> None:
    rt = runtime_for("orders.fifo")
    records = [sqs_record(body(record(n)), group="g") for n in range(1, 4)]
    left = iter([10_000, 9_500, 1_500, 900])  # at the start, then before each record
    response = aws_lambda.handle({"Records": records}, rt, remaining_ms=lambda: next(left))
    assert response["batchItemFailures"] == [{"itemIdentifier": records[2]["messageId"]}]
    assert table_ids(rt.clients) == {"APP-000001", "APP-000002"}

    rt = runtime_for("orders")
    records = [sqs_record(body(record(n))) for n in range(4, 7)]
    calls = iter([10_000])
    response = aws_lambda.handle({"Records": records}, rt, remaining_ms=lambda: next(calls, 500))
    assert len(response["batchItemFailures"]) == 3
    assert table_ids(rt.clients) == {"APP-000001", "APP-000002"}


def test_a_short_timeout_still_runs_its_records(mocked_aws: None) -> None:
    rt = runtime_for("orders")
    records = [sqs_record(body(record(n))) for n in range(1, 3)]
    response = aws_lambda.handle({"Records": records}, rt, remaining_ms=lambda: 900)
    assert response == {"batchItemFailures": []}  # 1 s functions: a quarter is kept back


def test_an_unexpected_error_fails_only_its_record(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime_for("orders")
    records = [sqs_record(body(record(n))) for n in range(1, 4)]
    real = rt.processor.process

    def flaky(raw: Any) -> Any:
        if raw["messageId"] == records[1]["messageId"]:
            raise RuntimeError("bug")
        return real(raw)

    monkeypatch.setattr(rt.processor, "process", flaky)
    response = aws_lambda.handle({"Records": records}, rt)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}
    assert table_ids(rt.clients) == {"APP-000001", "APP-000003"}


def test_the_entry_point_reads_the_environment_once_per_container(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_for("orders")
    provision(AwsClients(), load_settings(None, env=env), migration)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws_lambda, "_runtime", None)
    built: list[aws_lambda.Runtime] = []
    real = aws_lambda.build_runtime

    def counting(*args: Any, **kwargs: Any) -> aws_lambda.Runtime:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(aws_lambda, "build_runtime", counting)

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    for n in (1, 2):
        event = {"Records": [sqs_record(body(record(n)))]}
        assert aws_lambda.handler(event, Context()) == {"batchItemFailures": []}
    assert len(built) == 1
    assert table_ids(built[0].clients) == {"APP-000001", "APP-000002"}


def test_the_deployed_handler_path_still_names_the_runtime_handler() -> None:
    """Functions and templates made before the handler moved name
    ``northmigrate.aws_lambda.handler``; a redeploy keeps that path, and it is the runtime's."""
    import importlib

    from northmigrate.deploy.spec import HANDLER

    module, _, name = HANDLER.rpartition(".")
    assert (module, name) == ("northmigrate.aws_lambda", "handler")
    assert getattr(importlib.import_module(module), name) is aws_lambda.handler
