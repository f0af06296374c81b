from __future__ import annotations

import json

import pytest
from helpers import Project

pytestmark = pytest.mark.integration


def statuses(report: dict) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def test_doctor_passes_on_a_provisioned_setup(project: Project) -> None:
    project.queue_settings["visibility_timeout"] = 60
    project.write_config()
    project.cli("provision", check=True)
    result = project.cli("doctor", "--output", "json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] is True
    assert set(statuses(report).values()) == {"pass"}


def test_doctor_names_each_problem_of_a_miswired_setup(project: Project) -> None:
    sqs = project.client("sqs")
    sqs.create_queue(
        QueueName=project.queue_name,
        Attributes={"VisibilityTimeout": "5", "SqsManagedSseEnabled": "false"},
    )
    result = project.cli("doctor", "--output", "json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False
    found = statuses(report)
    assert found["dlq"] == "fail"  # no DLQ at all
    assert found["redrive policy"] == "fail"
    assert found["visibility timeout"] == "warn"
    assert found["queue encryption"] == "fail"
    fixes = {c["name"]: c["fix"] for c in report["checks"]}
    assert "provision" in fixes["redrive policy"]

    # now a DLQ with a short retention and a redrive policy that gives up too soon
    dlq_url = sqs.create_queue(
        QueueName=project.dlq_name, Attributes={"MessageRetentionPeriod": "120"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.set_queue_attributes(
        QueueUrl=project.queue_url(),
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
        },
    )
    report = json.loads(project.cli("doctor", "--output", "json").stdout)
    found = statuses(report)
    assert found["dlq"] == "pass"
    assert found["dlq retention"] == "fail"
    assert found["redrive policy"] == "warn"


def test_doctor_checks_the_largest_record_and_the_plugin(project: Project, tmp_path) -> None:
    project.queue_settings["max_message_size"] = 4096
    project.write_config()
    project.cli("provision", check=True)
    source = tmp_path / "r.jsonl"
    project.cli("sample", "--count", "20", "--out", str(source), check=True)
    report = json.loads(project.cli("doctor", "--source", str(source), "--output", "json").stdout)
    assert statuses(report)["largest record"] == "pass"
    big = tmp_path / "big.jsonl"
    record = json.loads(source.read_text().splitlines()[0])
    record["status"] = "approved"
    record["referral_code"] = "x" * 4000
    big.write_text(json.dumps(record) + "\n")
    report = json.loads(project.cli("doctor", "--source", str(big), "--output", "json").stdout)
    assert statuses(report)["largest record"] == "fail"

    project.plugin = "missing_module:migration"
    project.write_config()
    result = project.cli("doctor", "--output", "json")
    assert result.returncode == 1
    assert statuses(json.loads(result.stdout))["plugin"] == "fail"


def test_doctor_reads_a_table_source_with_its_clients(project: Project) -> None:
    """``doctor --source dynamodb://TABLE`` reads the table (it asked for no clients)."""
    project.run("provision", check=True)
    table = f"{project.name}-old"
    ddb = project.client("dynamodb")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "application_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "application_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=table, Item={"application_id": {"S": "APP-0000001"}})
    result = project.run("doctor", "--source", f"dynamodb://{table}", "--output", "json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "largest record" in checks, result.stderr
    assert "AWS clients" not in result.stderr
