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
from collections.abc import Callable
from typing import Any

from northmigrate.aws.clients import AwsClients, aws_errors, error_code
from northmigrate.consume.probe import PROBE_EVENT
from northmigrate.deploy.spec import StackSpec

Note = Callable[[str, str, bool, list[str]], bool]
PERMISSION_ID = "northmigrate-probe"
TARGET_ID = "probe"
_ABSENT = {"ResourceNotFoundException"}


def rule_name(function: str) -> str:
    return f"{function[:58]}-probe"


def target_input() -> str:
    return json.dumps(PROBE_EVENT, separators=(",", ":"))


def ensure_schedule(clients: AwsClients, spec: StackSpec, function_arn: str, note: Note) -> None:
    """The rule, its target and the invoke permission, as they should be (none when the
    spec has no ``probe_schedule``)."""
    expression, function = spec.probe_schedule, spec.function_name
    if expression is None:
        return
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
