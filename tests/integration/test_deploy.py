"""deploy, tap and destroy through the CLI against the moto server.

moto cannot run Lambda functions: no message is ever sent to a queue with a mapping here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import Project, install_distribution

pytestmark = pytest.mark.integration

PLUGIN = """
import dataclasses
from northmigrate.examples.onboarding import migration as example

VERSION = {version}
migration = dataclasses.replace(example)
"""


def deploy_project(project: Project, deploy: str = "") -> Project:
    project.queue_settings["visibility_timeout"] = 180
    project.guard_settings = {}  # the product's default: the guard on, and its rights
    project.plugin = project.write_plugin("mig", PLUGIN.format(version=1)) + ":migration"
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbatch_size = 5\nbatching_window_s = 2\n'
        + "max_concurrency = 6\nmemory_mb = 512\n"
        + deploy
    )
    project.cli("provision", check=True)
    return project


def actions(report: dict[str, Any]) -> dict[str, str]:
    return {c["resource"]: c["action"] for c in report["changes"]}


def statements(project: Project, role: str) -> list[dict[str, Any]]:
    document = project.client("iam").get_role_policy(
        RoleName=role, PolicyName="northmigrate-worker"
    )["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    return list(document["Statement"])


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_deploy_tap_and_destroy_lifecycle(project: Project) -> None:
    deploy_project(project)
    fn, role = f"{project.name}-worker", f"{project.name}-worker-role"
    lam, iam = project.client("lambda"), project.client("iam")
    sqs = project.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=project.queue_url(), AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=project.queue_url(project.dlq_name), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]

    plan = project.cli_json("deploy", "--dry-run")
    assert plan["dry_run"] is True
    assert set(actions(plan).values()) == {"create"}
    assert plan["package"]["plugin_files"] == ["mig.py"]
    assert any(d.startswith("pydantic==") for d in plan["package"]["dependencies"])
    listing = project.cli("deploy", "--dry-run", check=True).stdout
    assert "plugin files: mig.py" in listing and "pydantic==" in listing
    assert lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"] == []
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role)

    first = project.cli_json("deploy")
    assert set(actions(first).values()) == {"created"}, first

    # the role: trusted by Lambda only, and a policy checked action by action
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    granted: dict[str, set[str]] = {}
    for statement in statements(project, role):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            assert "*" not in action
            granted.setdefault(action, set()).update(as_list(statement["Resource"]))
    group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{fn}"
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{project.table}"
    assert granted == {
        "sqs:ReceiveMessage": {queue_arn},
        "sqs:DeleteMessage": {queue_arn},
        "sqs:ChangeMessageVisibility": {queue_arn},
        "sqs:GetQueueAttributes": {queue_arn},
        "sqs:GetQueueUrl": {queue_arn, dlq_arn},
        "sqs:SendMessage": {queue_arn, dlq_arn},  # retries' copies, and dead letters
        "logs:CreateLogGroup": {group, group + ":*"},
        "logs:CreateLogStream": {group, group + ":*"},
        "logs:PutLogEvents": {group, group + ":*"},
        "dynamodb:PutItem": {table},  # what the handler calls; verify's reads are not the role's
        # the guard: its own queue's tap, its own function's mapping (a condition, below)
        "sqs:ListQueueTags": {queue_arn},
        "sqs:TagQueue": {queue_arn},
        "sqs:UntagQueue": {queue_arn},  # the probe opens the tap; throttling lowers its limit
        "lambda:GetEventSourceMapping": {
            "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:*"
        },
        "lambda:UpdateEventSourceMapping": {
            "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:*"
        },
    }
    [guarded] = [s for s in statements(project, role) if s.get("Sid") == "GuardDisablesItsMapping"]
    assert guarded["Condition"] == {
        "StringEquals": {
            "lambda:FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{fn}"
        }
    }

    # the function and the mapping, with the requested settings
    conf = lam.get_function(FunctionName=fn)["Configuration"]
    assert conf["Runtime"] == "python3.12"
    assert conf["Handler"] == "northmigrate.aws_lambda.handler"
    assert conf["Role"] == first["role_arn"]
    assert (conf["Timeout"], conf["MemorySize"]) == (30, 512)
    assert conf["CodeSha256"] == first["code_sha256"]
    variables = conf["Environment"]["Variables"]
    assert variables["NORTHMIGRATE_QUEUE__NAME"] == f'"{project.queue_name}"'  # TOML texts
    assert variables["NORTHMIGRATE_MIGRATION__PLUGIN"] == '"mig:migration"'
    mapping = lam.get_event_source_mapping(UUID=first["mapping_uuid"])
    assert mapping["EventSourceArn"] == queue_arn
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (5, 2)
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 6}
    assert mapping["State"] == "Enabled"

    second = project.cli_json("deploy")
    assert second["changed"] is False and set(actions(second).values()) == {"unchanged"}
    assert second["code_sha256"] == first["code_sha256"]

    project.write_plugin("mig", PLUGIN.format(version=2))
    third = project.cli_json("deploy")
    changes = {c["resource"]: c for c in third["changes"]}
    assert changes["function"]["action"] == "updated" and changes["function"]["changed"] == ["Code"]
    assert {changes[r]["action"] for r in ("role", "log_group", "mapping")} == {"unchanged"}
    assert third["code_sha256"] != first["code_sha256"]
    assert (
        lam.get_function(FunctionName=fn)["Configuration"]["CodeSha256"] == (third["code_sha256"])
    )

    # the tap drives the mapping (and the queue's tags, for local workers)
    closed = project.cli_json("tap", "close")
    assert closed["tap"] == "closed" and closed["open"] is False
    assert closed["closed_by"] == "operator" and closed["closed_at"]
    assert lam.get_event_source_mapping(UUID=first["mapping_uuid"])["State"] == "Disabled"
    tags = sqs.list_queue_tags(QueueUrl=project.queue_url())["Tags"]
    assert tags["northmigrate:tap"] == "closed"
    limited = project.cli_json("tap", "limit", "3")
    assert limited["limit"] == 3 and limited["mappings"][0]["max_concurrency"] == 3
    assert lam.get_event_source_mapping(UUID=first["mapping_uuid"])["ScalingConfig"] == {
        "MaximumConcurrency": 3
    }
    assert project.cli("tap", "limit", "1").returncode == 2
    opened = project.cli_json("tap", "open")
    assert opened["opened"].startswith("operator at ")  # who opened it last, and when
    when = opened.pop("opened")
    assert opened == {
        "queue": project.queue_name,
        "tap": "open",
        "open": True,
        "limit": 3,
        "closed_by": None,
        "closed_at": None,
        "reason": None,
        "limit_by": "operator",
        "limit_reason": None,
        "limit_was": None,
        "mappings": [
            {
                "uuid": first["mapping_uuid"],
                "function": fn,
                "state": "Enabled",
                "enabled": True,
                "mode": "on-demand",
                "max_concurrency": 3,
                "min_pollers": None,
                "max_pollers": None,
            }
        ],
    }
    assert project.cli_json("tap", "status") == opened | {"opened": when}
    assert project.cli_json("tap", "limit", "none")["mappings"][0]["max_concurrency"] == 6

    # destroy: nothing of the worker is left; the queues stay unless asked
    gone = project.cli_json("destroy")
    assert {c["resource"] for c in gone["deleted"]} == {
        "mapping",
        "probe_schedule",  # the guard's probe (guard.reopen = "probe", the default)
        "function",
        "role",
        "log_group",
    }
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=fn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role)
    assert lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"] == []
    logs = project.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{fn}")
    assert logs["logGroups"] == []
    assert project.queue_url() and project.queue_url(project.dlq_name)
    queues = project.cli_json("destroy", "--delete-queues")
    assert [c["name"] for c in queues["deleted"]] == [project.queue_name, project.dlq_name]
    names = [u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])]
    assert project.queue_name not in names and project.dlq_name not in names


def test_deploy_refuses_a_visibility_timeout_under_six_times_the_function_timeout(
    project: Project,
) -> None:
    deploy_project(project, "timeout_s = 60\n")
    result = project.cli("deploy")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "visibility timeout of 180 s" in result.stderr
    assert "set queue.visibility_timeout = 360" in result.stderr
    assert "set deploy.timeout_s = 30 or less" in result.stderr
    assert project.client("lambda").list_functions()["Functions"] == [] or all(
        f["FunctionName"] != f"{project.name}-worker"
        for f in project.client("lambda").list_functions()["Functions"]
    )


def test_dry_run_lists_an_installed_plugin_and_its_dependencies(
    project: Project, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path_factory.mktemp("site-packages")
    code = "from northmigrate.examples.onboarding import migration\n"
    install_distribution(site, "acme-dry", "2.0", {"acme_dry/__init__.py": code}, ["acme-util"])
    install_distribution(site, "acme-util", "0.9", {"acme_util.py": ""}, [])
    monkeypatch.syspath_prepend(str(site))
    deploy_project(project)  # the queues
    project.plugin = "acme_dry:migration"
    path = project.write_config()
    path.write_text(path.read_text() + '\n[deploy]\narch = "host"\n')
    assert not (project.root / "acme_dry").exists()
    plan = project.cli_json("deploy", "--dry-run")["package"]
    assert plan["plugin_distribution"] == "acme-dry 2.0"
    assert plan["plugin_dependencies"] == ["acme-util==0.9"]
    assert "acme-util==0.9" in plan["dependencies"]
    assert {"acme_dry/__init__.py", "acme_dry-2.0.dist-info/METADATA"} <= set(plan["plugin_files"])
    listing = project.cli("deploy", "--dry-run", check=True).stdout
    assert "plugin: acme-dry 2.0 (installed distribution); its dependencies: acme-util==0.9" in (
        listing
    )


def test_template_refuses_a_loopback_endpoint_unless_kept(project: Project) -> None:
    deploy_project(project)
    refused = project.cli("deploy", "--template", "stack.yaml")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"aws.endpoint_url {project.endpoint} is a loopback address" in refused.stderr
    assert "--keep-local-endpoint" in refused.stderr
    assert not (project.root / "stack.yaml").exists()
    report = project.cli_json("deploy", "--template", "stack.yaml", "--keep-local-endpoint")
    assert report["endpoint_url"] == project.endpoint and report["queues"] is True
    template = json.loads((project.root / "stack.yaml").read_text())
    assert (project.root / "stack.zip").is_file()
    function = template["Resources"]["WorkerFunction"]["Properties"]
    assert function["CodeUri"] == "stack.zip"
    assert function["Environment"]["Variables"]["NORTHMIGRATE_AWS__ENDPOINT_URL"] == (
        f'"{project.endpoint}"'
    )
    assert report["parameters"]["QueueName"] == project.queue_name
    # nothing was deployed
    assert all(
        f["FunctionName"] != f"{project.name}-worker"
        for f in project.client("lambda").list_functions()["Functions"]
    )
    existing = project.cli_json(
        "deploy", "--template", "worker.json", "--no-queues", "--keep-local-endpoint"
    )
    assert existing["queues"] is False
    names = {r.split(" ")[0] for r in existing["resources"]}
    assert names == {
        "WorkerRole",
        "WorkerPolicy",
        "WorkerLogGroup",
        "WorkerFunction",
        "WorkerQueueMapping",
        "ProbeSchedule",  # the guard's probe (guard.reopen = "probe", the default)
        "ProbePermission",
    }
    table = project.cli("deploy", "--template", "t.json", "--keep-local-endpoint", check=True)
    assert f"the function's environment sets aws.endpoint_url = {project.endpoint}" in (
        table.stdout
    )
    assert "sam deploy --template-file t.json" in table.stdout
    misplaced = project.cli("deploy", "--no-queues")
    assert misplaced.returncode == 2 and "go with --template FILE" in misplaced.stderr


def test_destroy_deletes_a_dlq_with_messages_only_after_exporting_them(project: Project) -> None:
    pytest.importorskip("northmigrate.dlq.inspect")
    project.cli("provision", check=True)  # nothing deployed: no mapping on these queues
    sqs = project.client("sqs")
    for n in range(2):
        sqs.send_message(QueueUrl=project.queue_url(project.dlq_name), MessageBody=f"dead {n}")

    refused = project.cli("destroy", "--delete-queues")
    assert refused.returncode == 2 and "still holds 2 messages" in refused.stderr
    assert "--export FILE" in refused.stderr
    unconfirmed = project.cli("destroy", "--delete-queues", "--export", "dlq.jsonl")
    assert unconfirmed.returncode == 2 and "--show-pii" in unconfirmed.stderr
    assert project.queue_url(project.dlq_name)  # nothing was deleted

    done = project.cli_json("destroy", "--delete-queues", "--export", "dlq.jsonl", "--show-pii")
    assert done["exported"] == 2
    lines = (project.root / "dlq.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all("dead " in line for line in lines)
    assert (project.root / "dlq.jsonl").stat().st_mode & 0o777 == 0o600
    names = [u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])]
    assert project.queue_name not in names and project.dlq_name not in names
