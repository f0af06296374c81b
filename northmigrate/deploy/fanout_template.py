"""The fan-out in ``deploy --template`` (``deploy.fan_out = true``): the enqueue function, the
state machine and their roles as SAM resources, from the same ``FanOutSpec`` as an API
deploy (``northmigrate.deploy.fanout``).

- ``EnqueueRole`` and ``EnqueuePolicy``, ``EnqueueLogGroup`` (retained), ``EnqueueFunction``
  (the worker's ``CodeUri``, the child's handler);
- ``FanOutRole`` (trusted by Step Functions) and ``FanOutPolicy``;
- ``FanOutStateMachine``, named ``<queue>-fan-out`` so that ``enqueue --fan-out`` finds it,
  its definition's function ARN given by ``DefinitionSubstitutions``.
"""

from __future__ import annotations

from typing import Any

from northmigrate.config import Settings
from northmigrate.deploy.fanout import STATES_TRUST, FanOutSpec, fan_out_spec
from northmigrate.deploy.intrinsics import ref, resolve
from northmigrate.deploy.spec import MANAGED_BY, TRUST_POLICY, StackSpec
from northmigrate.deploy.template import function_resource, partitioned

_TAGS = [{"Key": k, "Value": v} for k, v in MANAGED_BY.items()]
_RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
FUNCTION_ARN = "EnqueueFunctionArn"  # the definition's substitution


def _partitioned(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` with its ARNs in the stack's partition."""
    statements = [{**st, "Resource": partitioned(st["Resource"])} for st in policy["Statement"]]
    return {**policy, "Statement": statements}


def template_fan_out(settings: Settings, worker: StackSpec) -> FanOutSpec | None:
    """The fan-out's spec with CloudFormation's names (None: ``deploy.fan_out`` is off)."""
    return fan_out_spec(
        settings, worker, function_name=ref("EnqueueFunction"), log_group=ref("EnqueueLogGroup")
    )


def resources(spec: FanOutSpec, code_uri: str) -> dict[str, Any]:
    """The fan-out's resources, intrinsic functions resolved."""
    fn = spec.function
    body = {
        "EnqueueRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": TRUST_POLICY,
                "Description": "northmigrate enqueue function of the fan-out",
                "Tags": _TAGS,
            },
        },
        "EnqueuePolicy": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "northmigrate-enqueue",
                "Roles": [ref("EnqueueRole")],
                "PolicyDocument": _partitioned(fn.policy),
            },
        },
        "EnqueueLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            **_RETAIN,
            "Properties": {"RetentionInDays": fn.log_retention_days, "Tags": _TAGS},
        },
        "EnqueueFunction": function_resource(fn, code_uri, "EnqueueRole", "EnqueueLogGroup"),
        "FanOutRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": STATES_TRUST,
                "Description": f"northmigrate fan-out {spec.machine_name}",
                "Tags": _TAGS,
            },
        },
        "FanOutPolicy": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "northmigrate-fan-out",
                "Roles": [ref("FanOutRole")],
                "PolicyDocument": _partitioned(spec.machine_role.policy),
            },
        },
        "FanOutStateMachine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "DependsOn": ["FanOutPolicy"],
            "Properties": {
                "StateMachineName": spec.machine_name,
                "StateMachineType": "STANDARD",
                "RoleArn": ref("FanOutRole.Arn"),
                "Definition": spec.definition("${" + FUNCTION_ARN + "}"),
                "DefinitionSubstitutions": {FUNCTION_ARN: ref("EnqueueFunction.Arn")},
                "Tags": _TAGS,
            },
        },
    }
    return dict(resolve(body))


def outputs() -> dict[str, Any]:
    return dict(
        resolve(
            {
                "FanOutStateMachineArn": {
                    "Description": "the fan-out's state machine (enqueue --fan-out)",
                    "Value": ref("FanOutStateMachine"),
                },
                "EnqueueFunctionName": {
                    "Description": "the fan-out's enqueue function (generated name)",
                    "Value": ref("EnqueueFunction"),
                },
            }
        )
    )


__all__ = ["outputs", "resources", "template_fan_out"]
