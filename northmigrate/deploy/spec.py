"""What a deploy wants to exist: names, the function's settings and environment, the policy.

One ``StackSpec`` feeds both ``deploy`` (API calls) and ``deploy --template`` (CloudFormation),
so the two always describe the same stack.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from northmigrate.config import Settings
from northmigrate.deploy.iam import plugin_statements
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


def _bounded_name(base: str, suffix: str, limit: int = 64) -> str:
    """``base + suffix`` within ``limit`` characters (a short digest keeps it unique)."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", base)
    if len(clean) + len(suffix) <= limit:
        return clean + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{clean[: limit - len(suffix) - 9]}-{digest}{suffix}"


def function_name(settings: Settings) -> str:
    return settings.deploy.function_name or _bounded_name(settings.queue.name, "-worker")


def role_name(settings: Settings) -> str:
    return settings.deploy.role_name or _bounded_name(function_name(settings), "-role")


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


def toml_value(value: Any) -> str:
    """A value as TOML text (inline), which config's environment overrides parse back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError("migration.options holds a number that is not finite")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise InputError(f"migration.options holds a {type(value).__name__}, which TOML cannot hold")


def environment(settings: Settings) -> dict[str, str]:
    """The function's configuration, as the ``NORTHMIGRATE_*`` overrides config reads."""
    q, a = settings.queue, settings.aws
    env = {
        "NORTHMIGRATE_QUEUE__NAME": q.name,
        "NORTHMIGRATE_QUEUE__DLQ_NAME": q.dead_letter_name,
        "NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT": str(q.max_receive_count),
        "NORTHMIGRATE_QUEUE__VISIBILITY_TIMEOUT": str(q.visibility_timeout),
        "NORTHMIGRATE_MIGRATION__PLUGIN": settings.migration.plugin,
        "NORTHMIGRATE_MIGRATION__OPTIONS": toml_value(settings.migration.options),
        "NORTHMIGRATE_WORKER__CONCURRENCY": str(settings.worker.concurrency),
        "NORTHMIGRATE_WORKER__BACKOFF_BASE_S": str(settings.worker.backoff_base_s),
        "NORTHMIGRATE_WORKER__BACKOFF_MAX_S": str(settings.worker.backoff_max_s),
        "NORTHMIGRATE_GUARD__ENABLED": str(settings.guard.enabled).lower(),
        "NORTHMIGRATE_GUARD__WINDOW": str(settings.guard.window),
        "NORTHMIGRATE_GUARD__MIN_RECORDS": str(settings.guard.min_records),
        "NORTHMIGRATE_GUARD__FAILURE_SHARE": str(settings.guard.failure_share),
        "NORTHMIGRATE_AWS__RETRY_MODE": a.retry_mode,
        "NORTHMIGRATE_AWS__MAX_ATTEMPTS": str(a.max_attempts),
    }
    if a.endpoint_url:  # an emulator: the function talks to it as the CLI does
        env["NORTHMIGRATE_AWS__ENDPOINT_URL"] = a.endpoint_url
    return env


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
                "Action": ["sqs:ListQueueTags", "sqs:TagQueue"],
                "Resource": queue.arn,
            },
            {
                "Sid": "GuardDisablesItsMapping",
                "Effect": "Allow",
                "Action": ["lambda:UpdateEventSourceMapping"],
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
    )
