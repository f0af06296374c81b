"""What a plugin may ask for its function's role (``Migration.iam_statements``), checked.

A statement must name what it grants: ``Effect`` Allow or Deny, actions ``service:Action``
without ``*`` or ``?``, resources that are ARNs; no ``NotAction``, ``NotResource``,
``NotPrincipal`` or ``Principal``; and no wildcard resource for an action that touches data,
unless the config allows it (``deploy.allow_wildcard_resources``). A refusal names the
statement and what is wrong with it.
"""

from __future__ import annotations

import re
from typing import Any

from northmigrate.errors import PluginError

_STATEMENT_KEYS = ("Sid", "Effect", "Action", "Resource", "Condition")
_NEGATIONS = {
    "NotAction": "grants every action it does not name",
    "NotResource": "grants on every resource it does not name",
    "NotPrincipal": "names principals, which a role's own policy never does",
    "Principal": "names a principal, which a role's own policy never does",
}
_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
_RESOURCE_TYPE = re.compile(r"^[A-Za-z0-9-]+[/:]")
# Actions AWS takes only with Resource "*", and that read or write no record.
RESOURCELESS_ACTIONS = frozenset(
    {
        "cloudwatch:PutMetricData",
        "sts:GetCallerIdentity",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    }
)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def wildcard_resource(resource: str) -> bool:
    """``*``, or an ARN whose resource part, once its type (``table/``, ``function:``) is set
    aside, is nothing but wildcards: ``arn:aws:s3:::*``, ``arn:aws:dynamodb:R:A:table/*``."""
    if resource == "*":
        return True
    service, part = resource.split(":")[2], resource.split(":", 5)[5]
    if service != "s3":  # an S3 resource starts with the bucket's name, not a type
        part = _RESOURCE_TYPE.sub("", part, count=1)
    return not part.strip("*?/:")


def _statement_problem(statement: Any, allow_wildcard_resources: bool) -> tuple[str, str]:
    """(what is wrong, how to fix it) of one plugin statement, or ("", "") when it is fine."""
    one_by_one = "list the actions the handler calls, one by one"
    if not isinstance(statement, dict):
        return f"is not a JSON object (a dict) but a {type(statement).__name__}", ""
    for key, why in _NEGATIONS.items():
        if key in statement:
            return f"uses {key}, which {why}", "use Action and Resource, naming each one"
    unknown = [k for k in statement if k not in _STATEMENT_KEYS]
    if unknown:
        return (
            f"has the unknown key {unknown[0]!r}",
            f"a statement takes {', '.join(_STATEMENT_KEYS)}",
        )
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        return f"has Effect {effect!r}", 'Effect is "Allow" or "Deny"'
    actions = _as_list(statement.get("Action", []))
    if not actions:
        return "has no Action", one_by_one
    for action in actions:
        if not isinstance(action, str):
            return f"has Action {action!r}, not a text like 'dynamodb:PutItem'", one_by_one
        if "*" in action or "?" in action:
            return f"allows the wildcard action {action!r}", one_by_one
        if not _ACTION.match(action):
            return f"has Action {action!r}, not of the form service:Action", one_by_one
    resources = _as_list(statement.get("Resource", []))
    if not resources:
        return "has no Resource", "name the ARNs the handler uses"
    for resource in resources:
        if not isinstance(resource, str) or (
            resource != "*" and (not resource.startswith("arn:") or resource.count(":") < 5)
        ):
            return f"has Resource {resource!r}, which is not an ARN", "name ARNs, one by one"
        data = [a for a in actions if a not in RESOURCELESS_ACTIONS]
        if (
            effect == "Allow"
            and data
            and wildcard_resource(resource)
            and not allow_wildcard_resources
        ):
            return (
                f"allows the wildcard resource {resource!r} for {data[0]}",
                "name the resources one by one, or set deploy.allow_wildcard_resources = true",
            )
    return "", ""


def plugin_statements(
    name: str, declared: Any, *, allow_wildcard_resources: bool = False
) -> list[dict[str, Any]]:
    """The statements a plugin declares, checked: each names the actions and resources it
    grants, no wildcard action (``*`` or ``?``), no ``NotAction``/``NotResource``/
    ``NotPrincipal``/``Principal``, Effect ``Allow`` or ``Deny``, and no wildcard resource
    for an action that reaches data (unless ``allow_wildcard_resources``). PluginError names
    the statement's index and what is wrong."""
    if not isinstance(declared, list | tuple):
        raise PluginError(
            f"{name}: iam_statements() returned a {type(declared).__name__}, "
            "not a list of statements"
        )
    out = []
    for index, statement in enumerate(declared):
        problem, hint = _statement_problem(statement, allow_wildcard_resources)
        if problem:
            raise PluginError(f"{name}: iam_statements()[{index}] {problem}", hint=hint or None)
        out.append(dict(statement))
    return out
