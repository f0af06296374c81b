"""The template's stack migrates records: created by ministack's CloudFormation, which runs
the function behind the stack's own mapping.

``deploy --template`` (the emulator's endpoint kept for the function), the package uploaded
and ``CodeUri`` replaced as ``sam deploy`` does, the SAM translator, ``CreateStack``. Then
the alarm notifies the topic the e-mail parameter asked for, ``provision`` finds the
stack's queues as it would have made them (nothing to change) and
creates the example's table (the plugin's ``setup``), ``enqueue`` sends the records, and no
local worker runs: every record is migrated by the stack's function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project, assert_every_record_migrated, ministack_endpoint, write_jsonl

from northmigrate.records.sample import generate

pytestmark = [pytest.mark.volume, pytest.mark.volume_ci, pytest.mark.integration]
sam_transform = pytest.importorskip("samtranslator.translator.transform")


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


@pytest.mark.timeout(900)
def test_a_stack_from_the_template_migrates_every_record(
    ministack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(root=tmp_path, endpoint=ministack)
    project.queue_settings.update(visibility_timeout=12, max_receive_count=3)
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\ntimeout_s = 2\nmax_concurrency = 4\n'
    )
    written = project.cli_json("deploy", "--template", "stack.json", "--keep-local-endpoint")
    body = json.loads((tmp_path / "stack.json").read_text())
    s3 = project.client("s3")
    bucket = f"{project.name}-code"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket, Key="worker.zip", Body=(tmp_path / written["package"]).read_bytes()
    )
    body["Resources"]["WorkerFunction"]["Properties"]["CodeUri"] = f"s3://{bucket}/worker.zip"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    translated = sam_transform.transform(body, {}, NoManagedPolicies())

    cloudformation = project.client("cloudformation")
    stack = f"{project.name}-stack"
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": "AlarmEmail", "ParameterValue": "oncall@example.com"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 300
    while True:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        if described["StackStatus"] != "CREATE_IN_PROGRESS":
            break
        assert time.monotonic() < deadline, "the stack is still being created"
        time.sleep(1)
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert outputs["QueueUrl"].endswith("/" + project.queue_name)
    assert outputs["DeadLetterQueueUrl"].endswith("/" + project.dlq_name)

    (alarm,) = project.client("cloudwatch").describe_alarms(AlarmNames=[outputs["AlarmName"]])[
        "MetricAlarms"
    ]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": project.dlq_name}]
    (topic,) = alarm["AlarmActions"]
    assert alarm["OKActions"] == [topic]
    subscriptions = project.client("sns").list_subscriptions_by_topic(TopicArn=topic)
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions["Subscriptions"]] == [
        ("email", "oncall@example.com")
    ]

    provisioned = project.cli_json("provision")
    queues = {c["resource"]: c["action"] for c in provisioned["changes"]}
    assert queues["queue"] == queues["dlq"] == "unchanged", provisioned["changes"]

    records = [dict(r, status="submitted") for r in generate(60, seed=3)]
    enqueued = project.cli_json("enqueue", str(write_jsonl(tmp_path / "records.jsonl", records)))
    assert enqueued["enqueued"] > 0
    assert_every_record_migrated(project, enqueued["enqueued"])
    tap = project.cli_json("tap", "status")
    assert [m["function"] for m in tap["mappings"]] == [outputs["FunctionName"]]
