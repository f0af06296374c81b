"""``deploy --template``: the whole stack as an AWS SAM template, for teams that deploy
through infrastructure as code.

The template holds what ``provision``, ``deploy`` and ``alarm`` make, built from the same
settings, so both ways give the same stack:

- ``MainQueue`` and ``DeadLetterQueue`` with the attributes ``provision`` sets (SSE, sizes,
  retentions, the redrive policy and the DLQ's redrive-allow policy), the TLS-only policy of
  each (``AWS::SQS::QueuePolicy``) and the ``managed-by`` tag; kept when the stack is
  deleted or a queue replaced (``DeletionPolicy``/``UpdateReplacePolicy: Retain``): they hold
  the records;
- ``WorkerRole`` (trusted by Lambda) and its inline policy ``WorkerPolicy`` (the checked
  least-privilege document ``deploy`` writes, the guard's rights included);
- ``WorkerFunction``, an ``AWS::Serverless::Function`` whose ``CodeUri`` names the package
  written next to the template, so ``sam deploy`` or ``aws cloudformation package`` uploads
  it;
- ``WorkerLogGroup`` (retention, retained on delete) and ``WorkerQueueMapping``;
- ``DeadLetterAlarm`` (as ``alarm`` makes it), with an SNS topic and an e-mail subscription
  when the parameters ask for them.

Nothing is named after this account or region: ARNs use pseudo-parameters, the queue names
are parameters (defaulting to the config's), and the role, function and log group names are
left to CloudFormation (``CAPABILITY_IAM`` suffices, and no name clashes with an API deploy).
With ``queues=False`` the queues stay outside the stack (``provision`` owns them) and the
template holds only the worker, reading the queues the parameters name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from northmigrate.config import Settings
from northmigrate.consume.tap import TapState
from northmigrate.control.provision import queue_attributes
from northmigrate.deploy.environment import toml_value
from northmigrate.deploy.intrinsics import PARTITION, pseudo, ref, resolve, sqs_arn
from northmigrate.deploy.schedule import TARGET_ID, target_input
from northmigrate.deploy.spec import MANAGED_BY, POLICY_NAME, TRUST_POLICY, StackSpec, build_spec
from northmigrate.dlq.alarm import alarm_settings
from northmigrate.errors import InputError
from northmigrate.plugin import Migration

TRANSFORM = "AWS::Serverless-2016-10-31"
ENDPOINT_ENV = "NORTHMIGRATE_AWS__ENDPOINT_URL"
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
_INTEGERS = {
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
}
_TAGS = [{"Key": k, "Value": v} for k, v in MANAGED_BY.items()]

GUARD_FINDS_ITS_MAPPING = {
    "Sid": "GuardFindsItsMapping",
    "Effect": "Allow",
    "Action": ["lambda:ListEventSourceMappings"],
    "Resource": "*",  # a List action takes no resource; it reads mapping settings, no data
}


def template_spec(
    settings: Settings,
    migration: Migration[Any],
    *,
    visibility_timeout: int,
    keep_endpoint: bool = False,
) -> StackSpec:
    """The spec with CloudFormation's names in it: the queues' ARNs from the parameters and
    pseudo-parameters, the function and log group as the stack will name them. The
    function's environment names the queues by the parameters, and keeps
    ``aws.endpoint_url`` only with ``keep_endpoint``."""
    function = settings.deploy.model_copy(update={"function_name": ref("WorkerFunction")})
    spec = build_spec(
        settings.model_copy(update={"deploy": function}),
        migration,
        queue_arn=sqs_arn(ref("QueueName")),
        dlq_arn=sqs_arn(ref("DeadLetterQueueName")),
        visibility_timeout=visibility_timeout,
        log_group=ref("WorkerLogGroup"),
    )
    env = {  # quoted: a parameter such as 12345 must reach the function as a text
        **spec.environment,
        "NORTHMIGRATE_QUEUE__NAME": toml_value(ref("QueueName")),
        "NORTHMIGRATE_QUEUE__DLQ_NAME": toml_value(ref("DeadLetterQueueName")),
    }
    if not keep_endpoint:
        env.pop(ENDPOINT_ENV, None)
    return replace(spec, environment=env)


def _partitioned(resource: Any) -> Any:
    """A plugin's ``arn:aws:…`` with the stack's partition (the same ARN in ``aws``)."""
    if isinstance(resource, list):
        return [_partitioned(r) for r in resource]
    if isinstance(resource, str) and resource.startswith("arn:aws:"):
        return f"arn:{PARTITION}:" + resource.removeprefix("arn:aws:")
    return resource


def _policy(spec: StackSpec) -> dict[str, Any]:
    """The role's policy, ARNs in the stack's partition. A stack cannot hand the function
    its mapping's UUID (the mapping needs the function first), so a guard there looks its
    own mapping up when it trips."""
    statements = [
        {**s, "Resource": _partitioned(s["Resource"])} if "Resource" in s else s
        for s in spec.policy["Statement"]
    ]
    if spec.environment.get("NORTHMIGRATE_GUARD__ENABLED") == "true":
        statements.append(GUARD_FINDS_ITS_MAPPING)
    return {**spec.policy, "Statement": statements}


def _name_parameter(settings: Settings, name: str, what: str) -> dict[str, Any]:
    pattern = r"^[A-Za-z0-9_-]{1,75}\.fifo$" if settings.queue.fifo else r"^[A-Za-z0-9_-]{1,80}$"
    return {
        "Type": "String",
        "Default": name,
        "AllowedPattern": pattern,
        "Description": f"name of the {what} (the config's queue section names it so)",
    }


def _parameters(settings: Settings, queues: bool) -> dict[str, Any]:
    q = settings.queue
    out = {
        "QueueName": _name_parameter(settings, q.name, "main queue"),
        "DeadLetterQueueName": _name_parameter(settings, q.dead_letter_name, "dead-letter queue"),
    }
    if queues:
        out |= {
            "AlarmThreshold": {
                "Type": "Number",
                "Default": 1,
                "MinValue": 1,
                "Description": "dead letters visible at which the alarm fires",
            },
            "AlarmTopicName": {
                "Type": "String",
                "Default": "",
                "Description": "SNS topic the alarm notifies (made by the stack; empty: a "
                "generated name when AlarmEmail is set, else no topic)",
            },
            "AlarmEmail": {
                "Type": "String",
                "Default": "",
                "AllowedPattern": r"^$|^[^@\s]+@[^@\s]+$",
                "Description": "e-mail address subscribed to the alarm's topic (the "
                "recipient confirms the subscription); empty: none",
            },
        }
    return out


def _queue(name_parameter: str, attributes: Mapping[Any, str], fifo: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"QueueName": ref(name_parameter)}
    if fifo:
        properties["FifoQueue"] = True
    for key, value in attributes.items():
        if key == "Policy":  # a resource of its own: AWS::SQS::QueuePolicy
            continue
        if key in _INTEGERS:
            properties[key] = int(value)
        elif key in ("RedrivePolicy", "RedriveAllowPolicy"):
            properties[key] = json.loads(value)
        else:
            properties[key] = {"true": True, "false": False}.get(value, value)
    return {"Type": "AWS::SQS::Queue", **RETAIN, "Properties": {**properties, "Tags": _TAGS}}


def _queue_policy(queue: str, attributes: Mapping[Any, str]) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {"Queues": [ref(queue)], "PolicyDocument": json.loads(attributes["Policy"])},
    }


def _queues(settings: Settings) -> dict[str, Any]:
    """The queues as ``provision`` makes them, their policies, and the DLQ's alarm."""
    dlq, main = queue_attributes(
        settings, main_arn=sqs_arn(ref("QueueName")), dlq_arn=ref("DeadLetterQueue.Arn")
    )
    fifo = settings.queue.fifo
    actions = {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopic")], []]}
    return {
        "DeadLetterQueue": _queue("DeadLetterQueueName", dlq, fifo),
        "MainQueue": _queue("QueueName", main, fifo),
        "DeadLetterQueuePolicy": _queue_policy("DeadLetterQueue", dlq),
        "MainQueuePolicy": _queue_policy("MainQueue", main),
        "DeadLetterAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                **alarm_settings(ref("DeadLetterQueue.QueueName"), ref("AlarmThreshold")),
                "ActionsEnabled": True,
                "AlarmActions": actions,
                "OKActions": actions,
            },
        },
        "AlarmTopic": {
            "Type": "AWS::SNS::Topic",
            "Condition": "HasAlarmTopic",
            "Properties": {
                "TopicName": {
                    "Fn::If": ["HasTopicName", ref("AlarmTopicName"), {"Ref": "AWS::NoValue"}]
                },
                "Tags": _TAGS,
            },
        },
        "AlarmSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {
                "TopicArn": ref("AlarmTopic"),
                "Protocol": "email",
                "Endpoint": ref("AlarmEmail"),
            },
        },
    }


def _conditions() -> dict[str, Any]:
    def given(parameter: str) -> dict[str, Any]:
        return {"Fn::Not": [{"Fn::Equals": [ref(parameter), ""]}]}

    return {
        "HasTopicName": given("AlarmTopicName"),
        "HasAlarmEmail": given("AlarmEmail"),
        "HasAlarmTopic": {
            "Fn::Or": [{"Condition": "HasTopicName"}, {"Condition": "HasAlarmEmail"}]
        },
    }


def _worker(spec: StackSpec, tap: TapState, code_uri: str, queues: bool) -> dict[str, Any]:
    return {
        "WorkerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": TRUST_POLICY,
                "Description": f"northmigrate worker of stack {pseudo('StackName')}",
                "Tags": _TAGS,
            },
        },
        # Apart from the role: its guard statement names the function, which needs the role.
        "WorkerPolicy": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": POLICY_NAME,
                "Roles": [ref("WorkerRole")],
                "PolicyDocument": _policy(spec),
            },
        },
        "WorkerLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            **RETAIN,  # what the worker did, kept for the retention even when the stack goes
            "Properties": {"RetentionInDays": spec.log_retention_days, "Tags": _TAGS},
        },
        "WorkerFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": code_uri,
                "Description": "northmigrate worker: migrates one SQS record at a time",
                "Runtime": spec.runtime,
                "Handler": spec.handler,
                "Architectures": [spec.architecture],
                "MemorySize": spec.memory_mb,
                "Timeout": spec.timeout_s,
                "Role": ref("WorkerRole.Arn"),
                "Environment": {"Variables": dict(spec.environment)},
                "LoggingConfig": {**spec.logging_config, "LogGroup": ref("WorkerLogGroup")},
                "Tags": dict(MANAGED_BY),
            },
        },
        "WorkerQueueMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            # the role may read the queue before Lambda checks it does
            "DependsOn": ["WorkerPolicy"],
            "Properties": {
                "EventSourceArn": ref("MainQueue.Arn") if queues else spec.queue.arn,
                "FunctionName": ref("WorkerFunction"),
                "Enabled": tap.open,
                **spec.mapping_settings(tap.limit),
            },
        },
        **_probe(spec),
    }


def _probe(spec: StackSpec) -> dict[str, Any]:
    """The guard's probe (deploy.schedule): a rule that invokes the function, and the
    permission to; none with ``guard.reopen = "manual"`` or the guard off."""
    if spec.probe_schedule is None:
        return {}
    target = {"Id": TARGET_ID, "Arn": ref("WorkerFunction.Arn"), "Input": target_input()}
    return {
        "ProbeSchedule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "northmigrate: the guard's probe while it holds the tap closed",
                "ScheduleExpression": spec.probe_schedule,
                "State": "ENABLED",
                "Targets": [target],
            },
        },
        "ProbePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": ref("WorkerFunction"),
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": ref("ProbeSchedule.Arn"),
            },
        },
    }


def _outputs(queues: bool) -> dict[str, Any]:
    values = {
        "FunctionName": (ref("WorkerFunction"), "the function (generated name)"),
        "FunctionArn": (ref("WorkerFunction.Arn"), "the function's ARN"),
        "RoleArn": (ref("WorkerRole.Arn"), "the function's role"),
        "MappingId": (ref("WorkerQueueMapping"), "the event source mapping's UUID"),
        "LogGroupName": (ref("WorkerLogGroup"), "the function's log group"),
    }
    if queues:
        values |= {
            "QueueUrl": (ref("MainQueue"), "the main queue's URL"),
            "QueueArn": (ref("MainQueue.Arn"), "the main queue's ARN"),
            "DeadLetterQueueUrl": (ref("DeadLetterQueue"), "the DLQ's URL"),
            "DeadLetterQueueArn": (ref("DeadLetterQueue.Arn"), "the DLQ's ARN"),
            "AlarmName": (ref("DeadLetterAlarm"), "the alarm on the DLQ"),
        }
    return {k: {"Description": d, "Value": v} for k, (v, d) in values.items()}


def build_template(
    settings: Settings,
    spec: StackSpec,
    *,
    code_uri: str,
    queues: bool = True,
    tap: TapState | None = None,
) -> dict[str, Any]:
    """The stack as a SAM template (``spec`` from ``template_spec``). ``tap``: the state of
    existing queues (``queues=False``); a stack's own queues start with the tap open."""
    what = "queues, worker and alarm" if queues else "worker"
    body: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": TRANSFORM,
        "Description": f"northmigrate {what} for queue {settings.queue.name}",
        "Parameters": _parameters(settings, queues),
    }
    if queues:
        body["Conditions"] = _conditions()
    resources = _queues(settings) if queues else {}
    resources |= _worker(spec, tap or TapState(), code_uri, queues)
    body["Resources"] = resources
    body["Outputs"] = _outputs(queues)
    return dict(resolve(body))


def write_template(path: Path, template: dict[str, Any]) -> None:
    """JSON (which is YAML too, whatever the file's extension)."""
    try:
        path.write_text(json.dumps(template, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
