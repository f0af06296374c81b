"""The ``--filter`` language of table scans, turned into a DynamoDB FilterExpression.

A filter is either the simple form ``PATH=VALUE`` or ``PATH!=VALUE`` (no spaces around the
operator; ``PATH`` dotted for nested maps; ``VALUE`` a JSON literal such as ``5``, ``true``
or ``"007"``, else plain text), or a raw DynamoDB FilterExpression whose ``#name``
placeholders stand for the attribute ``name`` and whose ``:value`` placeholders come from
``--filter-values`` (a JSON object). Several filters must all hold. DynamoDB applies the
filter after reading a page: a filter narrows what is sent, not what is scanned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from northmigrate.errors import InputError

_SIMPLE = re.compile(
    r"^(?P<path>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)(?P<op>!=|=)(?P<value>.*)$"
)


def _literal(text: str) -> Any:
    """A simple filter's value: a JSON literal when it is one, else the text itself."""
    try:
        value = json.loads(text, parse_float=Decimal)
    except ValueError:
        return text
    return value if isinstance(value, str | int | Decimal | bool) or value is None else text


def build_filter(filters: Sequence[str], values_json: str | None = None) -> dict[str, Any]:
    """Scan arguments (FilterExpression, names, values) for ``--filter`` expressions.

    A filter is either the simple form ``PATH=VALUE`` or ``PATH!=VALUE`` (no spaces around
    the operator; ``PATH`` dotted for nested maps; ``VALUE`` a JSON literal such as ``5``,
    ``true`` or ``"007"``, else plain text), or a raw DynamoDB FilterExpression whose
    ``#name`` placeholders stand for the attribute ``name`` and whose ``:value``
    placeholders come from ``values_json`` (a JSON object). Several filters must all hold.
    """
    if not filters:
        if values_json:
            raise InputError("--filter-values needs a --filter that uses them")
        return {}
    values: dict[str, Any] = {}
    if values_json:
        try:
            given = json.loads(values_json, parse_float=Decimal)
        except ValueError as exc:
            raise InputError(f"--filter-values is not valid JSON: {exc}") from exc
        if not isinstance(given, dict) or not all(str(k).startswith(":") for k in given):
            raise InputError('--filter-values must be a JSON object like {":v": "approved"}')
        values.update(given)
    names: dict[str, str] = {}
    parts: list[str] = []
    for n, text in enumerate(filters):
        match = _SIMPLE.match(text.strip())
        if match and not match["value"].startswith(":"):
            aliases = []
            for k, part in enumerate(match["path"].split(".")):
                alias = f"#f{n}_{k}"
                names[alias] = part
                aliases.append(alias)
            op = "<>" if match["op"] == "!=" else "="
            values[f":f{n}"] = _literal(match["value"])
            parts.append(f"{'.'.join(aliases)} {op} :f{n}")
            continue
        for alias in re.findall(r"#[A-Za-z0-9_]+", text):
            names[alias] = alias[1:]
        missing = sorted(set(re.findall(r":[A-Za-z0-9_]+", text)) - set(values))
        if missing:
            raise InputError(
                f"--filter {text!r} uses {', '.join(missing)} without a value",
                hint='give them with --filter-values \'{":v": "..."}\'',
            )
        parts.append(text.strip())
    serialize = TypeSerializer().serialize
    try:
        wire = {k: serialize(v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"--filter value cannot be used in DynamoDB: {exc}") from exc
    out: dict[str, Any] = {
        "FilterExpression": " AND ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]
    }
    if names:
        out["ExpressionAttributeNames"] = names
    if wire:
        out["ExpressionAttributeValues"] = wire
    return out


def filter_identity(filters: Sequence[str], values_json: str | None) -> str | None:
    """What makes two scans' filters the same: the ``--filter`` texts and the values."""
    if not filters:
        return None
    text = " AND ".join(filters)
    if values_json:
        try:
            values = json.dumps(json.loads(values_json), sort_keys=True, separators=(",", ":"))
        except ValueError:
            values = values_json
        text += f" VALUES {values}"
    return text
