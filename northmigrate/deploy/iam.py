"""What a plugin may ask for its function's role (``Migration.iam_statements``), checked.

A statement must name what it grants: ``Effect`` Allow or Deny, actions ``service:Action``
without ``*`` or ``?``, resources that are ARNs; no ``NotAction``, ``NotResource``,
``NotPrincipal`` or ``Principal``; and no wildcard resource for an action that touches data,
unless the config allows it (``deploy.allow_wildcard_resources``). A near wildcard counts as
one: a ``*`` or ``?`` in the service or account of an ARN, or in the name of the resource
(``table/*/index/x``, ``arn:aws:s3:::*/*.csv``, ``secret:p*``), where only what lies below a
named resource may be a pattern (``bucket/*``, ``table/T/index/*``; a secret's random
suffix ``NAME-??????``). No Allow of an IAM action other than a read (``iam:Get*``,
``iam:List*``): a function that may write IAM (``iam:PutRolePolicy`` on its own role,
``iam:PassRole``…) may grant itself anything; the config flag does not lift that. A refusal
names the statement and what is wrong with it.
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


def _pattern(text: str) -> bool:
    return "*" in text or "?" in text


def resource_name(resource: str) -> str:
    """The name an ARN's resource part gives, its type (``table/``, ``function:``) set
    aside: the bucket of an S3 ARN, the log group of a logs one, else the first segment
    (up to ``/`` or ``:``)."""
    service, part = resource.split(":")[2], resource.split(":", 5)[5]
    if service == "s3":  # an S3 resource starts with the bucket's name, not a type
        return part.split("/", 1)[0]
    if service == "logs" and part.startswith("log-group:"):  # group names hold slashes
        return part.removeprefix("log-group:").split(":", 1)[0]
    part = _RESOURCE_TYPE.sub("", part, count=1)
    name = re.split(r"[/:]", part, maxsplit=1)[0]
    if service == "secretsmanager":  # NAME-??????: the six random characters AWS adds
        name = re.sub(r"-\?{6}$", "", name)
    return name


def wildcard_resource(resource: str) -> bool:
    """``*``, or an ARN that names no one resource: a ``*`` or ``?`` in its service, its
    account or the name of its resource (see ``resource_name``), or no name at all:
    ``arn:aws:s3:::*``, ``arn:aws:s3:::*/*.csv``, ``arn:aws:dynamodb:R:A:table/*/index/x``,
    ``arn:aws:secretsmanager:R:A:secret:p*``. Below a named resource a pattern is fine:
    ``arn:aws:s3:::bucket/*``, ``…:table/T/index/*``."""
    if resource == "*":
        return True
    fields = resource.split(":", 5)
    if _pattern(fields[1]) or _pattern(fields[2]) or _pattern(fields[4]):
        return True
    name = resource_name(resource)
    return not name or _pattern(name)


def iam_write(action: str) -> bool:
    """An IAM action that changes something (anything but ``Get*`` and ``List*``)."""
    service, _, verb = action.partition(":")
    return service.lower() == "iam" and not verb.lower().startswith(("get", "list"))


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
        if effect == "Allow" and iam_write(action):
            return (
                f"allows {action}, which changes IAM: the function could grant itself "
                "anything (its own role's policy included)",
                "grant IAM reads only (iam:Get*, iam:List*); change roles outside the worker",
            )
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
