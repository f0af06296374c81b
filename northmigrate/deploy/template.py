"""``deploy --template``: the same stack as a CloudFormation template, for teams that deploy
through infrastructure as code.

Plain CloudFormation (no transform): ``AWS::IAM::Role`` (trust and inline policy as deploy
makes them), ``AWS::Logs::LogGroup``, ``AWS::Lambda::Function`` and
``AWS::Lambda::EventSourceMapping``. The code comes from S3: upload the zip written next to
the template, then pass ``CodeBucket`` (and ``CodeKey`` when it is not the default, which
embeds the code's digest so that a code change changes the key and CloudFormation updates
the function). The role has a fixed name: deploy with ``--capabilities CAPABILITY_NAMED_IAM``.
The queues stay outside the stack (``provision`` owns them); the template names their ARNs.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from northmigrate.deploy.package import Package
from northmigrate.deploy.spec import MANAGED_BY, POLICY_NAME, TRUST_POLICY, StackSpec
from northmigrate.errors import InputError
from northmigrate.tap import TapState


def code_key(spec: StackSpec, package: Package) -> str:
    digest = base64.b64decode(package.sha256).hex()[:16]
    return f"{spec.function_name}/{digest}.zip"


GUARD_FINDS_ITS_MAPPING = {
    "Sid": "GuardFindsItsMapping",
    "Effect": "Allow",
    "Action": ["lambda:ListEventSourceMappings"],
    "Resource": "*",  # a List action takes no resource; it reads mapping settings, no data
}


def _policy(spec: StackSpec) -> dict[str, Any]:
    """The role's policy. A stack cannot hand the function its mapping's UUID (the mapping
    needs the function first), so a guard there looks its own mapping up when it trips."""
    if spec.environment.get("NORTHMIGRATE_GUARD__ENABLED") != "true":
        return spec.policy
    statements = [*spec.policy["Statement"], GUARD_FINDS_ITS_MAPPING]
    return {**spec.policy, "Statement": statements}


def build_template(spec: StackSpec, package: Package, tap: TapState) -> dict[str, Any]:
    tags = [{"Key": k, "Value": v} for k, v in MANAGED_BY.items()]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"northmigrate worker {spec.function_name} for queue {spec.queue.name}",
        "Parameters": {
            "CodeBucket": {
                "Type": "String",
                "Description": "S3 bucket holding the deployment package (the .zip written "
                "next to this template)",
            },
            "CodeKey": {
                "Type": "String",
                "Default": code_key(spec, package),
                "Description": "S3 key of the deployment package",
            },
        },
        "Resources": {
            "WorkerRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": spec.role_name,
                    "AssumeRolePolicyDocument": TRUST_POLICY,
                    "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": _policy(spec)}],
                    "Tags": tags,
                },
            },
            "WorkerLogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    "LogGroupName": spec.log_group,
                    "RetentionInDays": spec.log_retention_days,
                },
            },
            "WorkerFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": spec.function_name,
                    "Description": "northmigrate worker: migrates one SQS record at a time",
                    "Runtime": spec.runtime,
                    "Handler": spec.handler,
                    "Architectures": [spec.architecture],
                    "MemorySize": spec.memory_mb,
                    "Timeout": spec.timeout_s,
                    "Role": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
                    "Code": {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}},
                    "Environment": {"Variables": dict(spec.environment)},
                    "LoggingConfig": {
                        **spec.logging_config,
                        "LogGroup": {"Ref": "WorkerLogGroup"},
                    },
                    "Tags": tags,
                },
            },
            "WorkerQueueMapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": spec.queue.arn,
                    "FunctionName": {"Ref": "WorkerFunction"},
                    "Enabled": tap.open,
                    **spec.mapping_settings(tap.limit),
                },
            },
        },
        "Outputs": {
            "FunctionArn": {"Value": {"Fn::GetAtt": ["WorkerFunction", "Arn"]}},
            "RoleArn": {"Value": {"Fn::GetAtt": ["WorkerRole", "Arn"]}},
            "MappingId": {"Value": {"Ref": "WorkerQueueMapping"}},
        },
    }


def write_template(path: Path, template: dict[str, Any]) -> None:
    """JSON (which is YAML too, whatever the file's extension)."""
    try:
        path.write_text(json.dumps(template, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
