"""``deploy --template``: the whole stack as a SAM template, checked by cfn-lint (informational
checks on) and by the SAM translator, and built from the same settings as provision/deploy."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from northmigrate.config import Settings, load_settings
from northmigrate.consume.tap import TapState
from northmigrate.control.provision import queue_attributes
from northmigrate.deploy import check_endpoint, loopback
from northmigrate.deploy.intrinsics import ref, resolve
from northmigrate.deploy.template import build_template, template_spec
from northmigrate.errors import ConfigError
from northmigrate.examples.onboarding import migration

cfnlint_api = pytest.importorskip("cfnlint.api")
sam_transform = pytest.importorskip("samtranslator.translator.transform")


def settings(
    tmp_path: Path, extra: str = "", queue: str = "orders", env: dict[str, str] | None = None
) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[aws]\nregion = "eu-west-1"\n[queue]\nname = "{queue}"\nvisibility_timeout = 180\n'
        "retention_s = 7200\ndlq_retention_s = 86400\n"
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
        '[migration.options]\ntable = "target"\n'
        "[deploy]\nbatch_size = 5\nbatching_window_s = 2\nmax_concurrency = 6\n" + extra
    )
    return load_settings(path, env=env or {})


def template(s: Settings, *, queues: bool = True, keep: bool = False) -> dict[str, Any]:
    spec = template_spec(
        s, migration, visibility_timeout=s.queue.visibility_timeout, keep_endpoint=keep
    )
    tap = TapState() if queues else TapState(open=False)
    return build_template(s, spec, code_uri="stack.zip", queues=queues, tap=tap)


def lint(tmp_path: Path, body: dict[str, Any], name: str = "stack.json") -> list[str]:
    path = tmp_path / name
    path.write_text(json.dumps(body, indent=2))
    config = cfnlint_api.ManualArgs(include_checks=["I"], regions=["eu-west-1"])
    return [str(m) for m in cfnlint_api.lint_file(path, config=config)]


def packaged(body: dict[str, Any]) -> dict[str, Any]:
    """What ``sam deploy``/``aws cloudformation package`` hand CloudFormation: the local
    CodeUri replaced by the uploaded object's S3 URI."""
    out = copy.deepcopy(body)
    out["Resources"]["WorkerFunction"]["Properties"]["CodeUri"] = "s3://code-bucket/abc.zip"
    return out


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def translate(body: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    out = sam_transform.transform(copy.deepcopy(body), {}, NoManagedPolicies())
    assert isinstance(out, dict)
    return out


def test_the_template_holds_the_whole_stack(tmp_path: Path) -> None:
    body = template(settings(tmp_path))
    assert body["Transform"] == "AWS::Serverless-2016-10-31"
    types = {name: r["Type"] for name, r in body["Resources"].items()}
    assert types == {
        "DeadLetterQueue": "AWS::SQS::Queue",
        "MainQueue": "AWS::SQS::Queue",
        "DeadLetterQueuePolicy": "AWS::SQS::QueuePolicy",
        "MainQueuePolicy": "AWS::SQS::QueuePolicy",
        "DeadLetterAlarm": "AWS::CloudWatch::Alarm",
        "AlarmTopic": "AWS::SNS::Topic",
        "AlarmSubscription": "AWS::SNS::Subscription",
        "WorkerRole": "AWS::IAM::Role",
        "WorkerPolicy": "AWS::IAM::Policy",
        "WorkerLogGroup": "AWS::Logs::LogGroup",
        "WorkerFunction": "AWS::Serverless::Function",
        "WorkerQueueMapping": "AWS::Lambda::EventSourceMapping",
        "ProbeSchedule": "AWS::Events::Rule",  # the guard's probe (guard.reopen = "probe")
        "ProbePermission": "AWS::Lambda::Permission",
    }
    resources = body["Resources"]
    for stateful in ("MainQueue", "DeadLetterQueue", "WorkerLogGroup"):
        assert resources[stateful]["DeletionPolicy"] == "Retain"
        assert resources[stateful]["UpdateReplacePolicy"] == "Retain"
    for tagged in ("MainQueue", "DeadLetterQueue", "WorkerRole", "WorkerLogGroup"):
        tags = resources[tagged]["Properties"]["Tags"]
        assert {"Key": "managed-by", "Value": "northmigrate"} in tags
    assert resources["WorkerFunction"]["Properties"]["Tags"] == {"managed-by": "northmigrate"}
    assert resources["WorkerFunction"]["Properties"]["CodeUri"] == "stack.zip"
    assert set(body["Outputs"]) >= {"QueueUrl", "DeadLetterQueueUrl", "FunctionArn"}
    assert body["Outputs"]["QueueUrl"]["Value"] == {"Ref": "MainQueue"}
    assert body["Outputs"]["FunctionArn"]["Value"] == {"Fn::GetAtt": ["WorkerFunction", "Arn"]}


def test_the_queues_carry_what_provision_sets(tmp_path: Path) -> None:
    s = settings(tmp_path)
    body = template(s)
    main_arn = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${QueueName}"
    dlq_arn = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    dlq_wanted, main_wanted = queue_attributes(s, main_arn="MAIN", dlq_arn="DLQ")
    main = body["Resources"]["MainQueue"]["Properties"]
    dlq = body["Resources"]["DeadLetterQueue"]["Properties"]
    assert main["QueueName"] == {"Ref": "QueueName"}
    assert main["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert main["VisibilityTimeout"] == 180 == int(main_wanted["VisibilityTimeout"])
    assert main["MessageRetentionPeriod"] == 7200
    assert dlq["MessageRetentionPeriod"] == 86400
    assert main["ReceiveMessageWaitTimeSeconds"] == 20
    assert main["MaximumMessageSize"] == int(main_wanted["MaximumMessageSize"])
    assert dlq["MaximumMessageSize"] == int(dlq_wanted["MaximumMessageSize"]) == 1_048_576
    assert main["RedrivePolicy"] == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 15}
    assert dlq["RedriveAllowPolicy"] == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [{"Fn::Sub": main_arn}],
    }
    policy = body["Resources"]["MainQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "MainQueue"}]
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == {"Fn::Sub": main_arn}
    dlq_policy = body["Resources"]["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    assert dlq_policy["Statement"][0]["Resource"] == dlq_arn
    no_window = {"NORTHMIGRATE_DEPLOY__BATCHING_WINDOW_S": "0"}
    fifo = template(settings(tmp_path, queue="orders.fifo", env=no_window))
    assert fifo["Resources"]["MainQueue"]["Properties"]["FifoQueue"] is True
    assert fifo["Parameters"]["DeadLetterQueueName"]["Default"] == "orders-dlq.fifo"


def test_no_account_region_or_fixed_name_is_written(tmp_path: Path) -> None:
    body = template(settings(tmp_path))
    text = json.dumps(body)
    assert "123456789012" not in text and "us-east-1" not in text and "eu-west-1" not in text
    assert "arn:aws:" not in text  # every ARN in the stack's partition
    resources = body["Resources"]
    assert "RoleName" not in resources["WorkerRole"]["Properties"]
    assert "FunctionName" not in resources["WorkerFunction"]["Properties"]
    assert "LogGroupName" not in resources["WorkerLogGroup"]["Properties"]
    assert "AlarmName" not in resources["DeadLetterAlarm"]["Properties"]
    statements = {
        s.get("Sid"): s
        for s in resources["WorkerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    }
    guard = statements["GuardDisablesItsMapping"]["Condition"]["StringEquals"]
    assert guard["lambda:FunctionArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
        "${WorkerFunction}"
    }
    assert statements["GuardFindsItsMapping"]["Action"] == ["lambda:ListEventSourceMappings"]
    plugin = statements[None]  # the example's own statement, without a Sid
    assert plugin["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/target"
    }
    env = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["NORTHMIGRATE_QUEUE__NAME"] == {"Fn::Sub": '"${QueueName}"'}  # a TOML text
    assert env["NORTHMIGRATE_QUEUE__DLQ_NAME"] == {"Fn::Sub": '"${DeadLetterQueueName}"'}
    assert resources["WorkerQueueMapping"]["DependsOn"] == ["WorkerPolicy"]
    mapping = resources["WorkerQueueMapping"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["MainQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 6}
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (5, 2)


def test_an_endpoint_goes_in_the_function_only_when_kept(tmp_path: Path) -> None:
    s = settings(tmp_path, env={"NORTHMIGRATE_AWS__ENDPOINT_URL": "http://x:1"})
    dropped = template(s)["Resources"]["WorkerFunction"]["Properties"]["Environment"]
    assert "NORTHMIGRATE_AWS__ENDPOINT_URL" not in dropped["Variables"]
    kept = template(s, keep=True)["Resources"]["WorkerFunction"]["Properties"]["Environment"]
    assert kept["Variables"]["NORTHMIGRATE_AWS__ENDPOINT_URL"] == '"http://x:1"'


def test_the_alarm_is_the_one_alarm_makes_with_an_optional_topic_and_email(
    tmp_path: Path,
) -> None:
    body = template(settings(tmp_path))
    alarm = body["Resources"]["DeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["Threshold"] == {"Ref": "AlarmThreshold"}
    assert (alarm["MetricName"], alarm["Statistic"]) == (
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
    )
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopic"}], []]}
    assert body["Resources"]["AlarmTopic"]["Condition"] == "HasAlarmTopic"
    subscription = body["Resources"]["AlarmSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert body["Parameters"]["AlarmEmail"]["Default"] == ""


def test_an_existing_queues_template_holds_only_the_worker(tmp_path: Path) -> None:
    body = template(settings(tmp_path), queues=False)
    assert set(body["Resources"]) == {
        "WorkerRole",
        "WorkerPolicy",
        "WorkerLogGroup",
        "WorkerFunction",
        "WorkerQueueMapping",
        "ProbeSchedule",
        "ProbePermission",
    }
    mapping = body["Resources"]["WorkerQueueMapping"]["Properties"]
    assert mapping["EventSourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${QueueName}"
    }
    assert mapping["Enabled"] is False  # the existing queue's closed tap stays closed
    assert "Conditions" not in body and "QueueUrl" not in body["Outputs"]


@pytest.mark.parametrize(
    ("extra", "queue", "env", "queues"),
    [
        ("", "orders", {}, True),
        ("", "orders.fifo", {"NORTHMIGRATE_DEPLOY__BATCHING_WINDOW_S": "0"}, True),
        ("", "orders", {"NORTHMIGRATE_GUARD__ENABLED": "false"}, True),
        ('arch = "arm64"\n', "orders", {}, False),
    ],
)
def test_the_template_passes_cfn_lint_with_informational_checks(
    tmp_path: Path, extra: str, queue: str, env: dict[str, str], queues: bool
) -> None:
    body = template(settings(tmp_path, extra, queue=queue, env=env), queues=queues)
    assert lint(tmp_path, body) == []


def test_cfn_lint_really_runs_the_informational_checks(tmp_path: Path) -> None:
    body = template(settings(tmp_path))
    del body["Resources"]["WorkerLogGroup"]["DeletionPolicy"]
    problems = lint(tmp_path, body)
    assert any(p.startswith("[I3011") or "I3011" in p for p in problems), problems


def test_the_template_round_trips_through_the_sam_translator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = template(settings(tmp_path))
    out = translate(packaged(body), monkeypatch)
    assert "Transform" not in out
    function = out["Resources"]["WorkerFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    props = function["Properties"]
    assert props["Code"] == {"S3Bucket": "code-bucket", "S3Key": "abc.zip"}
    sam = body["Resources"]["WorkerFunction"]["Properties"]
    for key in (
        "Handler",
        "Runtime",
        "Architectures",
        "MemorySize",
        "Timeout",
        "Role",
        "Environment",
        "LoggingConfig",
        "Description",
    ):
        assert props[key] == sam[key], key
    assert {"Key": "managed-by", "Value": "northmigrate"} in props["Tags"]
    # every other resource passes through unchanged: no role, policy or mapping of SAM's own
    assert set(out["Resources"]) == set(body["Resources"])
    for name, resource in body["Resources"].items():
        if name != "WorkerFunction":
            assert out["Resources"][name] == resource, name
    assert lint(tmp_path, out, "translated.json") == []


def test_placeholders_become_intrinsic_functions_and_literals_stay_literal() -> None:
    assert resolve(ref("MainQueue")) == {"Ref": "MainQueue"}
    assert resolve([ref("MainQueue.Arn")]) == [{"Fn::GetAtt": ["MainQueue", "Arn"]}]
    assert resolve({ref("Key"): f"a ${{x}} {ref('Name')}"}) == {
        ref("Key"): {"Fn::Sub": "a ${!x} ${Name}"}
    }
    assert resolve("plain ${x}") == "plain ${x}"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:4566", True),
        ("http://127.0.0.1:5000", True),
        ("http://127.8.9.10", True),
        ("http://[::1]:4566", True),
        ("http://0.0.0.0:4566", True),
        ("http://sqs.localhost:4566", True),
        ("https://sqs.eu-west-1.amazonaws.com", False),
        ("http://10.0.0.7:4566", False),
        ("http://localstack.internal:4566", False),
    ],
)
def test_which_endpoints_are_this_machine(url: str, local: bool) -> None:
    assert loopback(url) is local


def test_a_loopback_endpoint_is_refused_with_the_reason_unless_kept(tmp_path: Path) -> None:
    s = settings(tmp_path, env={"NORTHMIGRATE_AWS__ENDPOINT_URL": "http://localhost:4566"})
    with pytest.raises(ConfigError) as caught:
        check_endpoint(s, keep_local_endpoint=False)
    assert caught.value.exit_code == 2
    assert "is a loopback address" in str(caught.value) and "inside Lambda" in str(caught.value)
    assert "--keep-local-endpoint" in (caught.value.hint or "")
    assert check_endpoint(s, keep_local_endpoint=True) == "http://localhost:4566"
    remote = settings(tmp_path, env={"NORTHMIGRATE_AWS__ENDPOINT_URL": "http://10.0.0.7:1"})
    assert check_endpoint(remote, keep_local_endpoint=False) == "http://10.0.0.7:1"
    assert check_endpoint(settings(tmp_path), keep_local_endpoint=False) is None
