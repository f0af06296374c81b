"""What a deploy wants to exist: names, the function's settings and environment, the policy.

One ``StackSpec`` feeds both ``deploy`` (API calls) and ``deploy --template`` (CloudFormation),
so the two always describe the same stack.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from northmigrate.config import Settings
from northmigrate.deploy.environment import environment
from northmigrate.deploy.iam import plugin_statements
from northmigrate.enqueue.fanout import bounded_name, role_of
from northmigrate.errors import ConfigError, InputError, PluginError
from northmigrate.plugin import Migration

HANDLER = "northmigrate.aws_lambda.handler"
POLICY_NAME = "northmigrate-worker"
VISIBILITY_FACTOR = 6  # AWS: the queue's visibility timeout at least 6x the function timeout
MANAGED_BY = {"managed-by": "northmigrate"}
_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):sqs:(?P<region>[^:]+):(?P<account>[^:]+):(?P<name>.+)$"
)

Architecture = Literal["x86_64", "arm64"]  # what Lambda runs


def function_name(settings: Settings) -> str:
    return settings.deploy.function_name or bounded_name(settings.queue.name, "-worker", 64)


def role_name(settings: Settings) -> str:
    return settings.deploy.role_name or role_of(function_name(settings))


def log_group_name(function: str) -> str:
    return f"/aws/lambda/{function}"


def function_timeout(settings: Settings, visibility_timeout: int) -> int:
    """deploy.timeout_s, else the longest the visibility timeout allows (1 to 900 s)."""
    if settings.deploy.timeout_s is not None:
        return settings.deploy.timeout_s
    return max(1, min(900, visibility_timeout // VISIBILITY_FACTOR))


def check_visibility(queue: str, visibility_timeout: int, timeout_s: int) -> None:
    """Refuse a queue whose messages would reappear while the function still runs them."""
    needed = VISIBILITY_FACTOR * timeout_s
    if visibility_timeout >= needed:
        return
    fixes = [f"set queue.visibility_timeout = {needed} (or more) and run northmigrate provision"]
    if visibility_timeout // VISIBILITY_FACTOR >= 1:
        fixes.append(f"set deploy.timeout_s = {visibility_timeout // VISIBILITY_FACTOR} or less")
    raise ConfigError(
        f"queue {queue} has a visibility timeout of {visibility_timeout} s, under "
        f"{VISIBILITY_FACTOR} x the function timeout of {timeout_s} s ({needed} s)",
        hint="; or ".join(fixes),
    )


def check_batching(settings: Settings) -> None:
    d = settings.deploy
    if settings.queue.fifo and d.batch_size > 10:
        raise ConfigError(
            f"invalid value for deploy.batch_size: {d.batch_size} (a FIFO queue takes 1 to 10)"
        )
    if settings.queue.fifo and d.batching_window_s:
        raise ConfigError(
            "invalid value for deploy.batching_window_s: a FIFO queue takes no batching window",
            hint="set deploy.batching_window_s = 0",
        )
    if d.batch_size > 10 and d.batching_window_s < 1:
        raise ConfigError(
            f"invalid value for deploy.batching_window_s: a batch size of {d.batch_size} "
            "(over 10) needs a batching window of at least 1 s",
            hint="set deploy.batching_window_s = 1 (or more), or deploy.batch_size = 10",
        )


@dataclass(frozen=True)
class QueueRef:
    arn: str
    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, arn: str) -> QueueRef:
        match = _ARN.match(arn)
        if not match:
            raise InputError(f"{arn!r} is not an SQS queue ARN")
        return cls(arn=arn, **match.groupdict())


def policy_document(
    *,
    queue: QueueRef,
    dlq: QueueRef,
    log_group: str,
    migration: Migration[Any],
    options: dict[str, Any],
    allow_wildcard_resources: bool = False,
    function_name: str | None = None,
) -> dict[str, Any]:
    """Least privilege for the worker: its queue, its DLQ, its logs, and what the plugin
    declares (checked by ``plugin_statements``). No wildcard action; ``:*`` only where log
    streams are named at run time."""
    group_arn = f"arn:{queue.partition}:logs:{queue.region}:{queue.account}:log-group:{log_group}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ConsumeMainQueue",
            "Effect": "Allow",
            # SendMessage: a retry is a delayed copy of its message, sent back to this queue.
            "Action": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            "Resource": queue.arn,
        },
        {
            "Sid": "DeadLetter",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": dlq.arn,
        },
        {
            "Sid": "OwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [group_arn, f"{group_arn}:*"],
        },
    ]
    if function_name is not None:  # the guard: its own queue's tags, its own mapping only
        prefix = f"arn:{queue.partition}:lambda:{queue.region}:{queue.account}"
        statements += [
            {
                "Sid": "GuardClosesTheTap",
                "Effect": "Allow",
                # Untag: the probe opens the tap again; throttling lowers its limit.
                "Action": ["sqs:ListQueueTags", "sqs:TagQueue", "sqs:UntagQueue"],
                "Resource": queue.arn,
            },
            {
                "Sid": "GuardDisablesItsMapping",
                "Effect": "Allow",
                "Action": ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
                "Resource": f"{prefix}:event-source-mapping:*",
                "Condition": {
                    "StringEquals": {"lambda:FunctionArn": f"{prefix}:function:{function_name}"}
                },
            },
        ]
    if migration.iam_statements is not None:
        try:
            declared = migration.iam_statements(options, queue.region, queue.account)
        except Exception as exc:
            raise PluginError(f"{migration.name}: iam_statements failed: {exc}") from exc
        statements += plugin_statements(
            migration.name, declared, allow_wildcard_resources=allow_wildcard_resources
        )
    return {"Version": "2012-10-17", "Statement": statements}


TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass(frozen=True)
class StackSpec:
    """Everything deploy creates, as it should be."""

    function_name: str
    role_name: str
    log_group: str
    runtime: str
    architecture: Architecture
    memory_mb: int
    timeout_s: int
    batch_size: int
    batching_window_s: int
    max_concurrency: int | None
    log_retention_days: int
    environment: dict[str, str]
    queue: QueueRef
    dlq: QueueRef
    policy: dict[str, Any]
    handler: str = HANDLER
    pollers: tuple[int, int] | None = None  # provisioned mode: (minimum, maximum)
    probe_schedule: str | None = None  # the guard's probe rule's rate (deploy.schedule)
    description: str = "northmigrate worker: migrates one SQS record at a time"

    @property
    def role_arn(self) -> str:
        return f"arn:{self.queue.partition}:iam::{self.queue.account}:role/{self.role_name}"

    @property
    def logging_config(self) -> dict[str, str]:
        """The function's logs as JSON (the runtime's own lines and the ``logging`` module's);
        the handler's event and EMF lines are JSON already."""
        return {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"}

    def mapping_settings(self, limit: int | None) -> dict[str, Any]:
        """The event source mapping's settings (``limit``: the tap's, over the config's). In
        provisioned mode the limit is the maximum number of pollers (AWS refuses a maximum
        concurrency beside a poller config)."""
        wanted: dict[str, Any] = {
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.batching_window_s,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }
        if self.pollers is not None:
            wanted["ProvisionedPollerConfig"] = poller_config(self.pollers, limit)
            return wanted
        concurrency = limit if limit is not None else self.max_concurrency
        if concurrency is not None:
            wanted["ScalingConfig"] = {"MaximumConcurrency": concurrency}
        return wanted


def poller_config(pollers: tuple[int, int], limit: int | None) -> dict[str, int]:
    """``ProvisionedPollerConfig`` for (minimum, maximum) pollers under a tap ``limit``
    (the maximum; the minimum never above it)."""
    low, high = pollers
    if limit is not None:
        high = limit
    return {"MinimumPollers": min(low, high), "MaximumPollers": high}


def lambda_architecture(arch: Literal["x86_64", "arm64", "host"]) -> Architecture:
    """The function's architecture: ``host`` packages run on the emulator's machine."""
    if arch == "host":
        import platform

        return "arm64" if platform.machine().lower() in {"arm64", "aarch64"} else "x86_64"
    return arch


def schedule_expression(settings: Settings) -> str | None:
    """The guard's probe rule's rate (deploy.schedule): ``probe_interval_s`` rounded up to
    whole minutes (EventBridge's shortest rate); None with the guard off or reopen manual."""
    if not settings.guard.enabled or settings.guard.reopen != "probe":
        return None
    minutes = max(1, math.ceil(settings.guard.probe_interval_s / 60))
    return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


def build_spec(
    settings: Settings,
    migration: Migration[Any],
    *,
    queue_arn: str,
    dlq_arn: str,
    visibility_timeout: int,
    log_group: str | None = None,
) -> StackSpec:
    """The desired stack; refuses settings AWS would refuse, or that would lose work.
    ``log_group``: a name other than the function's default (a template's)."""
    check_batching(settings)
    d = settings.deploy
    timeout = function_timeout(settings, visibility_timeout)
    check_visibility(settings.queue.name, visibility_timeout, timeout)
    fn = function_name(settings)
    queue, dlq = QueueRef.parse(queue_arn), QueueRef.parse(dlq_arn)
    group = log_group or log_group_name(fn)
    return StackSpec(
        function_name=fn,
        role_name=role_name(settings),
        log_group=group,
        runtime=d.runtime,
        architecture=lambda_architecture(d.arch),
        memory_mb=d.memory_mb,
        timeout_s=timeout,
        batch_size=d.batch_size,
        batching_window_s=d.batching_window_s,
        max_concurrency=None if d.pollers else d.max_concurrency,
        pollers=d.pollers,
        log_retention_days=d.log_retention_days,
        environment=environment(settings),
        queue=queue,
        dlq=dlq,
        policy=policy_document(
            queue=queue,
            dlq=dlq,
            log_group=group,
            migration=migration,
            options=settings.migration.options,
            allow_wildcard_resources=d.allow_wildcard_resources,
            function_name=fn if settings.guard.enabled else None,
        ),
        probe_schedule=schedule_expression(settings),
    )
