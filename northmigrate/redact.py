"""Keep sensitive fields out of sight.

Paths are dotted field names; a list on the way is walked into, so ``owners.tax_id`` names
the tax id of every owner. ``redact`` masks those fields in a record; ``scrub`` masks their
values wherever they appear inside free text (an exception message, say).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"
_MIN_SCRUB_LEN = 3  # shorter values are too common to scrub from text without mangling it


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


def sensitive_values(value: Any, paths: Iterable[str]) -> set[str]:
    """The text of every sensitive leaf in ``value`` (for ``scrub``)."""
    found: set[str] = set()
    _collect(value, _tree(paths), found)
    return found


def _collect(value: Any, tree: dict[str, Any] | None, found: set[str]) -> None:
    if tree is None:
        _leaves(value, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, tree, found)
    elif isinstance(value, dict):
        for key, subtree in tree.items():
            if key in value:
                _collect(value[key], subtree, found)


def _leaves(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _leaves(item, found)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, found)
    elif value is not None and not isinstance(value, bool):
        text = str(value)
        if len(text) >= _MIN_SCRUB_LEN:
            found.add(text)


def scrub(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of each value replaced by ``***`` (longest first)."""
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text
