"""The fan-out on Step Functions (``deploy.fan_out = true``): what ``deploy``, ``deploy
--template`` and ``destroy`` add for ``enqueue s3://… --fan-out N``.

- the **enqueue function**: the worker's package with another handler
  (``northmigrate.enqueue.child.handler``), one vCPU, 15 minutes; its role may send to the
  main queue, read the sources ``deploy.fan_out_sources`` names (nothing else in S3) and
  read and write the run store under ``northmigrate/fan-out/`` of ``deploy.fan_out_bucket``;
- the **state machine** ``<queue>-fan-out``: a Distributed Map whose items (one per shard)
  are read from the run store, each child invoking the enqueue function with
  ``{source, shard, run, store}``. A child that fails or stops short of its timeout is
  retried (it resumes from its state); ``ShardFailed`` (a source it cannot read) is not.
  Every shard is run whatever the others do (``ToleratedFailurePercentage`` 100): the CLI
  names the shards that did not finish. Its role may invoke the enqueue function, run the
  map's child executions of this state machine, and read the run store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from northmigrate.aws.clients import AwsClients, aws_errors
from northmigrate.config import Settings
from northmigrate.control.provision import Change
from northmigrate.deploy.apply import Deployer
from northmigrate.deploy.package import Package
from northmigrate.deploy.role import ensure_role
from northmigrate.deploy.spec import (
    MANAGED_BY,
    TRUST_POLICY,
    QueueRef,
    StackSpec,
    log_group_name,
)
from northmigrate.enqueue.fanout import (
    HANDLER,
    enqueue_function_name,
    role_of,
    source_prefix,
    state_machine_arn,
    state_machine_name,
)
from northmigrate.enqueue.store import PREFIX
from northmigrate.errors import ConfigError
from northmigrate.sources.names import s3_uri

# the worker's trust policy, for Step Functions
STATES_TRUST: dict[str, Any] = {
    **TRUST_POLICY,
    "Statement": [
        {**TRUST_POLICY["Statement"][0], "Principal": {"Service": "states.amazonaws.com"}}
    ],
}


@dataclass(frozen=True)
class FanOutSpec:
    """The fan-out's resources, as they should be."""

    function: StackSpec  # the enqueue function (the worker's spec, renamed and re-roled)
    machine_name: str
    machine_arn: str
    machine_role: StackSpec  # the state machine's role (role_name and policy only)
    concurrency: int
    retries: int = 10  # a shard's retries: each resumes where the one before stopped

    def definition(self, function_arn: str) -> dict[str, Any]:
        return definition(function_arn, self.concurrency, self.retries)


def definition(function_arn: str, concurrency: int, retries: int = 10) -> dict[str, Any]:
    """The state machine: one child per item of ``s3://{bucket}/{key}`` (the execution's
    input), each invoking the enqueue function with its item and retrying it ``retries``
    times (``deploy.fan_out_retries``)."""
    return {
        "Comment": "northmigrate fan-out: one child per shard of an S3 source",
        "StartAt": "Shards",
        "States": {
            "Shards": {
                "Type": "Map",
                "Label": "Shards",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
                },
                "MaxConcurrency": concurrency,
                "ToleratedFailurePercentage": 100,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Enqueue",
                    "States": {
                        "Enqueue": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                            "OutputPath": "$.Payload",
                            "Retry": [
                                {"ErrorEquals": ["ShardFailed"], "MaxAttempts": 0},
                                {
                                    "ErrorEquals": ["States.ALL"],
                                    "IntervalSeconds": 2,
                                    "BackoffRate": 2.0,
                                    "MaxDelaySeconds": 60,
                                    "MaxAttempts": retries,
                                },
                            ],
                            "End": True,
                        }
                    },
                },
                "ResultPath": None,  # the counts are in the run store, whatever N is
                "End": True,
            }
        },
    }


def _check(settings: Settings) -> tuple[str, list[tuple[str, str]]]:
    d = settings.deploy
    if not d.fan_out_bucket:
        raise ConfigError(
            "deploy.fan_out needs deploy.fan_out_bucket: where the shards keep their state, "
            "reports and rejects"
        )
    if not d.fan_out_sources:
        raise ConfigError(
            "deploy.fan_out needs deploy.fan_out_sources: the S3 prefixes the enqueue "
            "function may read",
            hint='e.g. fan_out_sources = ["s3://old-exports/onboarding/"]',
        )
    sources = []
    for uri in d.fan_out_sources:
        if not uri.startswith("s3://"):
            raise ConfigError(f"deploy.fan_out_sources: {uri!r} is not an s3:// URI")
        sources.append(s3_uri(source_prefix(uri)))
    return d.fan_out_bucket, sources


def function_policy(
    queue: QueueRef, log_group: str, bucket: str, sources: list[tuple[str, str]]
) -> dict[str, Any]:
    """Least privilege for the enqueue function: no wildcard action, S3 by prefix."""
    p = queue.partition
    group_arn = f"arn:{p}:logs:{queue.region}:{queue.account}:log-group:{log_group}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SendToMainQueue",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
                "Resource": queue.arn,
            },
            {
                "Sid": "ReadSources",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": sorted({f"arn:{p}:s3:::{b}/{k}*" for b, k in sources}),
            },
            *(
                {
                    "Sid": f"ListSource{n}",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": f"arn:{p}:s3:::{b}",
                    "Condition": {"StringLike": {"s3:prefix": [f"{k}*"]}},
                }
                for n, (b, k) in enumerate(sources)
            ),
            {
                "Sid": "RunStore",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:{p}:s3:::{bucket}/{PREFIX}/*",
            },
            {
                "Sid": "OwnLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [group_arn, f"{group_arn}:*"],
            },
        ],
    }


def machine_policy(queue: QueueRef, machine: str, function: str, bucket: str) -> dict[str, Any]:
    """Least privilege for the state machine: invoke the enqueue function, run the map's
    child executions of this state machine only, read the shard lists."""
    p, r, a = queue.partition, queue.region, queue.account
    fn = f"arn:{p}:lambda:{r}:{a}:function:{function}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeEnqueueFunction",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction"],
                "Resource": [fn, f"{fn}:*"],
            },
            {
                "Sid": "RunMapChildren",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": f"arn:{p}:states:{r}:{a}:stateMachine:{machine}",
            },
            {
                "Sid": "FollowMapChildren",
                "Effect": "Allow",
                "Action": ["states:DescribeExecution", "states:StopExecution"],
                "Resource": f"arn:{p}:states:{r}:{a}:execution:{machine}/*",
            },
            {
                "Sid": "ReadShardLists",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"arn:{p}:s3:::{bucket}/{PREFIX}/*",
            },
        ],
    }


def fan_out_spec(
    settings: Settings,
    worker: StackSpec,
    *,
    function_name: str | None = None,
    log_group: str | None = None,
) -> FanOutSpec | None:
    """The fan-out's resources (None: ``deploy.fan_out`` is off). ConfigError when it is on
    without the bucket or the sources it needs. ``function_name`` and ``log_group``: a
    template's placeholders for the names CloudFormation gives."""
    d = settings.deploy
    if not d.fan_out:
        return None
    bucket, sources = _check(settings)
    queue = worker.queue
    fn = function_name or enqueue_function_name(settings.queue.name)
    group = log_group or log_group_name(fn)
    machine = state_machine_name(settings.queue.name)
    function = replace(
        worker,
        function_name=fn,
        role_name=role_of(fn),
        log_group=group,
        handler=HANDLER,
        timeout_s=d.fan_out_timeout_s,
        memory_mb=d.fan_out_memory_mb,
        policy=function_policy(queue, group, bucket, sources),
        description="northmigrate enqueue: one shard of an S3 source (the fan-out's child)",
    )
    machine_role = replace(
        worker,
        function_name=machine,
        role_name=role_of(machine),
        policy=machine_policy(queue, machine, fn, bucket),
    )
    return FanOutSpec(
        function=function,
        machine_name=machine,
        machine_arn=state_machine_arn(queue.arn, machine),
        machine_role=machine_role,
        concurrency=d.fan_out_concurrency,
        retries=d.fan_out_retries,
    )


def apply(
    clients: AwsClients,
    spec: FanOutSpec,
    package: Package,
    *,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Change]:
    """Make the enqueue function (the worker's ``package``), the state machine and their
    roles match ``spec``; with ``dry_run``, only say what would change."""
    child = Deployer(clients, spec.function, package, dry_run=dry_run, sleep=sleep)
    role_arn = child.role()
    child.log_group()
    function_arn = child.function(role_arn)
    note = child._note  # the same bookkeeping for the state machine and its role
    machine_role = ensure_role(
        child.iam,
        spec.machine_role,
        note,
        trust=STATES_TRUST,
        description=f"northmigrate fan-out {spec.machine_name}",
    )
    sfn: Any = clients.client("stepfunctions")  # no type stubs installed for it
    wanted = json.dumps(spec.definition(function_arn), sort_keys=True)
    with aws_errors(f"state machine {spec.machine_name}"):
        try:
            current = sfn.describe_state_machine(stateMachineArn=spec.machine_arn)
        except sfn.exceptions.StateMachineDoesNotExist:
            current = None
        if current is None:
            if note("state_machine", spec.machine_name, True, []):
                sfn.create_state_machine(
                    name=spec.machine_name,
                    definition=wanted,
                    roleArn=machine_role,
                    type="STANDARD",
                    tags=[{"key": k, "value": v} for k, v in MANAGED_BY.items()],
                )
            return child.changes
        have = json.dumps(json.loads(current["definition"]), sort_keys=True)
        changed = (["definition"] if have != wanted else []) + (
            ["roleArn"] if current.get("roleArn") != machine_role else []
        )
        if note("state_machine", spec.machine_name, False, changed):
            sfn.update_state_machine(
                stateMachineArn=spec.machine_arn, definition=wanted, roleArn=machine_role
            )
    return child.changes


__all__ = ["FanOutSpec", "apply", "definition", "fan_out_spec", "function_policy", "machine_policy"]
