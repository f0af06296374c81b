"""The template and the API path give the same stack.

One project is deployed twice on the moto server: with ``provision`` + ``deploy`` (the API
path), and from ``deploy --template``: packaged as ``sam deploy`` does it (the zip uploaded
to S3, ``CodeUri`` replaced by its S3 URI), translated by the SAM translator, and created as
a stack by moto's CloudFormation under other queue names. Then what matters is compared,
every name of one stack mapped to the other's:

- each queue's attributes (``GetQueueAttributes All`` but the ARN, timestamps and counts):
  SSE, sizes, retentions, visibility, long poll, the redrive policy, the DLQ's redrive-allow
  policy. Two are compared in the written template instead, their intrinsic functions
  resolved: ``Policy`` (the TLS-only policy, an ``AWS::SQS::QueuePolicy``, which moto's
  CloudFormation does not implement), against what provision set; and the DLQ's
  ``RedriveAllowPolicy`` (moto takes it but never reports it), against provision's own;
- the role's trust policy and its inline policy ``northmigrate-worker``, statement by
  statement (the stack's adds ``GuardFindsItsMapping``: it cannot give the function its
  mapping's UUID);
- the function's runtime, handler, memory, timeout, architecture and environment (the API
  path adds the mapping's UUID for the guard); moto reports no ``LoggingConfig``, so the
  template's is checked against the spec in tests/unit/test_deploy_template.py;
- the mapping's batch size, batching window, response types, scaling config and state;
- the log group's retention.

moto runs no function: nothing is ever sent to these queues.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from helpers import Project, cli_env

from northmigrate.config import load_settings
from northmigrate.control.provision import queue_attributes as provision_attributes

pytestmark = pytest.mark.integration
sam_transform = pytest.importorskip("samtranslator.translator.transform")

SKIPPED_ATTRIBUTES = {
    "QueueArn",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
}


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def document(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` (JSON-like) with the stack's names written as the API path's."""
    text = json.dumps(value, sort_keys=True)
    for theirs, ours in sorted(names.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(theirs, ours)
    return json.loads(text)


def queue_attributes(project: Project, name: str) -> dict[str, Any]:
    sqs = project.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {
        k: document(v) if k in ("RedrivePolicy", "RedriveAllowPolicy", "Policy") else v
        for k, v in attributes.items()
        if k not in SKIPPED_ATTRIBUTES
    }


def role_policy(project: Project, role: str) -> dict[str, Any]:
    got = project.client("iam").get_role_policy(RoleName=role, PolicyName="northmigrate-worker")
    return dict(document(got["PolicyDocument"]))


def stack_outputs(project: Project, stack: str) -> dict[str, str]:
    described = project.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def function_settings(project: Project, name: str) -> dict[str, Any]:
    conf = project.client("lambda").get_function_configuration(FunctionName=name)
    keys = ("Runtime", "Handler", "MemorySize", "Timeout", "Architectures", "Environment")
    out = {k: conf.get(k) for k in keys}
    out["LoggingConfig"] = {
        k: v for k, v in (conf.get("LoggingConfig") or {}).items() if k != "LogGroup"
    }
    return out


def mapping_settings(project: Project, function: str) -> dict[str, Any]:
    (mapping,) = project.client("lambda").list_event_source_mappings(FunctionName=function)[
        "EventSourceMappings"
    ]
    keys = (
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "ScalingConfig",
        "State",
    )
    return {k: mapping.get(k) for k in keys} | {"queue": mapping["EventSourceArn"]}


def resolved(value: Any, refs: dict[str, str], account: str) -> Any:
    """A template value with its Ref/GetAtt/Sub resolved (enough for the queue policies)."""
    if isinstance(value, list):
        return [resolved(v, refs, account) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return refs[value["Ref"]]
    if "Fn::GetAtt" in value:
        return refs[".".join(value["Fn::GetAtt"])]
    if "Fn::Sub" in value:
        text = str(value["Fn::Sub"])
        pseudo = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": account}
        for key, sub in {**pseudo, **refs}.items():
            text = text.replace("${" + key + "}", sub)
        return text
    return {k: resolved(v, refs, account) for k, v in value.items()}


def test_the_template_and_the_api_path_make_the_same_stack(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the SAM translator's region
    project.queue_settings |= {"visibility_timeout": 120, "retention_s": 7200}
    project.guard_settings = {}  # the default: the guard on, with its rights
    path = project.write_config()
    settings = '[deploy]\narch = "host"\nbatch_size = 20\nbatching_window_s = 3\nmemory_mb = 384\n'
    path.write_text(path.read_text() + settings + "max_concurrency = 4\nlog_retention_days = 7\n")
    project.cli("provision", check=True)
    api = project.cli_json("deploy")
    ours = {"queue": project.queue_name, "dlq": project.dlq_name}

    written = project.cli_json("deploy", "--template", "stack.json", "--keep-local-endpoint")
    body = json.loads((project.root / "stack.json").read_text())
    s3 = project.client("s3")
    bucket = f"{project.name}-code"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="worker.zip", Body=(project.root / "stack.zip").read_bytes())
    body["Resources"]["WorkerFunction"]["Properties"]["CodeUri"] = f"s3://{bucket}/worker.zip"
    translated = sam_transform.transform(body, {}, NoManagedPolicies())
    theirs = {"queue": f"{project.name}-stk", "dlq": f"{project.name}-stk-dlq"}
    stack = f"{project.name}-stack"
    project.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(translated),
        Parameters=[
            {"ParameterKey": "QueueName", "ParameterValue": theirs["queue"]},
            {"ParameterKey": "DeadLetterQueueName", "ParameterValue": theirs["dlq"]},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    out = stack_outputs(project, stack)
    assert out["QueueUrl"].endswith("/" + theirs["queue"])
    assert out["DeadLetterQueueUrl"].endswith("/" + theirs["dlq"])
    function = out["FunctionName"]
    assert function != api["function_name"] and out["FunctionArn"].endswith(":" + function)
    role = out["RoleArn"].rsplit("/", 1)[1]
    names = {
        theirs["dlq"]: ours["dlq"],
        theirs["queue"]: ours["queue"],
        function: api["function_name"],
        out["LogGroupName"]: f"/aws/lambda/{api['function_name']}",
    }

    # the queues
    account = api["role_arn"].split(":")[4]

    def queue_arn(name: str) -> str:
        return f"arn:aws:sqs:us-east-1:{account}:{name}"

    refs = {"QueueName": theirs["queue"], "DeadLetterQueue.Arn": queue_arn(theirs["dlq"])}
    compared: dict[str, set[str]] = {}
    for kind in ("queue", "dlq"):
        api_side = queue_attributes(project, ours[kind])
        stack_side = renamed(queue_attributes(project, theirs[kind]), names)
        api_policy = api_side.pop("Policy")
        assert "Policy" not in stack_side  # moto's CloudFormation has no AWS::SQS::QueuePolicy
        assert stack_side == api_side, kind
        written_policy = body["Resources"][
            "MainQueuePolicy" if kind == "queue" else "DeadLetterQueuePolicy"
        ]["Properties"]["PolicyDocument"]
        assert renamed(resolved(written_policy, refs, account), names) == api_policy, kind
        compared[kind] = set(api_side)
    assert {"SqsManagedSseEnabled", "RedrivePolicy", "VisibilityTimeout"} <= compared["queue"]
    assert {"SqsManagedSseEnabled", "MessageRetentionPeriod"} <= compared["dlq"]
    # moto reports no RedriveAllowPolicy (it takes it): the template's, resolved, is provision's
    dlq_wanted, _ = provision_attributes(
        load_settings(path, env={}), main_arn=queue_arn(theirs["queue"]), dlq_arn="-"
    )
    allow = body["Resources"]["DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]
    assert resolved(allow, refs, account) == json.loads(dlq_wanted["RedriveAllowPolicy"])

    # the role
    iam = project.client("iam")
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    api_role = api["role_arn"].rsplit("/", 1)[1]
    assert document(trust) == document(
        iam.get_role(RoleName=api_role)["Role"]["AssumeRolePolicyDocument"]
    )
    stack_statements = renamed(role_policy(project, role), names)["Statement"]
    api_statements = role_policy(project, api_role)["Statement"]
    assert stack_statements[-1]["Sid"] == "GuardFindsItsMapping"
    assert stack_statements[:-1] == api_statements

    # the function, its mapping, its logs
    api_function = function_settings(project, api["function_name"])
    api_function["Environment"]["Variables"].pop("NORTHMIGRATE_GUARD__MAPPING_UUID")
    assert renamed(function_settings(project, function), names) == api_function
    assert renamed(mapping_settings(project, function), names) == mapping_settings(
        project, api["function_name"]
    )
    logs = project.client("logs")
    retention = {
        g["logGroupName"]: g.get("retentionInDays")
        for g in logs.describe_log_groups()["logGroups"]
        if g["logGroupName"] in (out["LogGroupName"], f"/aws/lambda/{api['function_name']}")
    }
    assert len(retention) == 2 and len(set(retention.values())) == 1
    assert written["queues"] is True


def test_aws_cloudformation_package_uploads_the_code_uri(project: Project) -> None:
    """The real packaging step (the AWS CLI, skipped when it is not installed) finds the zip
    the template's ``CodeUri`` names, uploads it, and writes its S3 URI in its place."""
    aws = shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed")
    project.cli("deploy", "--template", "stack.json", "--keep-local-endpoint", check=True)
    bucket = f"{project.name}-code"
    project.client("s3").create_bucket(Bucket=bucket)
    env = {**cli_env(), "AWS_ENDPOINT_URL": project.endpoint}  # S3 uploads included
    package = ["cloudformation", "package", "--template-file", "stack.json", "--use-json"]
    subprocess.run(
        [aws, *package, "--s3-bucket", bucket, "--output-template-file", "packaged.json"],
        cwd=project.root,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    packaged = json.loads((project.root / "packaged.json").read_text())
    uri = packaged["Resources"]["WorkerFunction"]["Properties"]["CodeUri"]
    assert uri.startswith(f"s3://{bucket}/")
    uploaded = project.client("s3").get_object(Bucket=bucket, Key=uri.split("/", 3)[3])
    assert uploaded["Body"].read() == (project.root / "stack.zip").read_bytes()
