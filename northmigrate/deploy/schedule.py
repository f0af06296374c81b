"""The probe's schedule: an EventBridge rule that invokes the function with the probe event.

While the guard holds the tap closed after an outage the mapping is disabled, so no SQS
event reaches the function; the rule does, every ``guard.probe_interval_s`` rounded up to
whole minutes (EventBridge's shortest rate is one minute). The function answers at once
when there is nothing to probe (the tap open, or closed by a person): one ``ListQueueTags``
a minute. ``deploy`` makes the rule (named ``<function>-probe``), its target and the
permission to invoke; ``destroy`` removes them; the template has the same two resources.
With ``guard.reopen = "manual"`` or the guard off there is no rule.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

from northmigrate.aws.clients import AwsClients, aws_errors, error_code
from northmigrate.config import Settings
from northmigrate.consume.probe import PROBE_EVENT

Note = Callable[[str, str, bool, list[str]], bool]
PERMISSION_ID = "northmigrate-probe"
TARGET_ID = "probe"
_ABSENT = {"ResourceNotFoundException"}


def rule_name(function: str) -> str:
    return f"{function[:58]}-probe"


def schedule_expression(settings: Settings) -> str | None:
    """The rule's rate, or None when there is to be no rule (guard off, reopen manual)."""
    if not settings.guard.enabled or settings.guard.reopen != "probe":
        return None
    minutes = max(1, math.ceil(settings.guard.probe_interval_s / 60))
    return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


def target_input() -> str:
    return json.dumps(PROBE_EVENT, separators=(",", ":"))


def ensure_schedule(
    clients: AwsClients, expression: str, function: str, function_arn: str, note: Note
) -> None:
    """The rule, its target and the invoke permission, as they should be."""
    events: Any = clients.client("events")
    lam = clients.client("lambda")
    name = rule_name(function)
    with aws_errors(f"EventBridge rule {name}"):
        try:
            current = events.describe_rule(Name=name)
        except Exception as exc:
            if error_code(exc) not in _ABSENT:
                raise
            current = None
        changed = []
        if current is not None and current.get("ScheduleExpression") != expression:
            changed = ["ScheduleExpression"]
        if not note("probe_schedule", name, current is None, changed):
            return
        rule_arn = events.put_rule(
            Name=name,
            ScheduleExpression=expression,
            State="ENABLED",
            Description="northmigrate: the guard's probe while it holds the tap closed",
        )["RuleArn"]
        events.put_targets(
            Rule=name, Targets=[{"Id": TARGET_ID, "Arn": function_arn, "Input": target_input()}]
        )
    with (
        aws_errors(f"permission of {name} to invoke {function}"),
        contextlib.suppress(lam.exceptions.ResourceConflictException),  # already granted
    ):
        lam.add_permission(
            FunctionName=function,
            StatementId=PERMISSION_ID,
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule_arn,
        )


def delete_schedule(clients: AwsClients, function: str) -> bool:
    """Remove the rule and its target; whether there was one."""
    events: Any = clients.client("events")
    name = rule_name(function)
    with aws_errors(f"EventBridge rule {name}"):
        try:
            events.remove_targets(Rule=name, Ids=[TARGET_ID])
            events.delete_rule(Name=name)
        except Exception as exc:
            if error_code(exc) in _ABSENT:
                return False
            raise
    return True
