"""The sensitive fields of a record: masked in the record itself (``redact``), and their
values collected for a scrubber (``sensitive_leaves``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel

MASK = "***"


# -- the fields ----------------------------------------------------------------------------


def redact(value: Any, paths: Iterable[str]) -> Any:
    """A copy of ``value`` with every field named by ``paths`` replaced by ``***``."""
    tree = _tree(paths)
    return _redact(value, tree) if tree else value


def _tree(paths: Iterable[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if child is None:  # a parent is already masked whole
                break
            node = child
        else:
            node[parts[-1]] = None
    return tree


def _redact(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_redact(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in tree:
            out[key] = item
        elif tree[key] is None:
            out[key] = MASK
        else:
            out[key] = _redact(item, tree[key])
    return out


def sensitive_leaves(value: Any, paths: Iterable[str]) -> list[object]:
    """Every value of a field named by ``paths``, typed, from a JSON-like record (dicts and
    lists) or a pydantic model (fields by name or alias, extras too). A named field that
    holds a dict, a list or a model gives all the leaves inside it. ``None`` is left out."""
    found: list[object] = []
    _collect(value, _tree(paths), found)
    return found


def sensitive_values(value: Any, paths: Iterable[str]) -> set[str]:
    """The text of every sensitive leaf in ``value``, booleans left out (for ``scrub``).

    Kept for callers that hold a set of strings; ``sensitive_leaves`` keeps the types."""
    return {_plain(leaf) for leaf in sensitive_leaves(value, paths) if not isinstance(leaf, bool)}


def _plain(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def _collect(value: Any, tree: dict[str, Any] | None, found: list[object]) -> None:
    if tree is None:
        found.extend(leaves(value))
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, tree, found)
    elif isinstance(value, Mapping | BaseModel):
        for key, subtree in tree.items():
            present, child = _field(value, key)
            if present:
                _collect(child, subtree, found)


def _field(value: Mapping[Any, Any] | BaseModel, name: str) -> tuple[bool, Any]:
    if isinstance(value, Mapping):
        return (True, value[name]) if name in value else (False, None)
    fields = type(value).model_fields
    if name in fields:
        return True, getattr(value, name)
    for attribute, info in fields.items():
        if name in (info.alias, info.validation_alias, info.serialization_alias):
            return True, getattr(value, attribute)
    extra = value.model_extra or {}
    return (True, extra[name]) if name in extra else (False, None)


def leaves(value: Any) -> Iterator[object]:
    if value is None:
        return
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from leaves(getattr(value, name))
        for item in (value.model_extra or {}).values():
            yield from leaves(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from leaves(item)
    else:
        yield value
