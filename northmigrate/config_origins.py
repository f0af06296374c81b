"""Where each value of the configuration came from, for its error messages: the environment
variable that set it, or the file and the line of its key (a line finder for TOML texts).

A base module: it imports only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([\"']?)([A-Za-z0-9_.-]+)\1\s*=")


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of each table header and key of a TOML text (its first occurrence)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(table + tuple(key.group(2).split(".")), number)
    return lines


class Sources:
    """Where each value of the merged configuration came from, for error messages."""

    def __init__(self, file: Path | None, text: str, env: dict[tuple[str, ...], str]) -> None:
        self.file = file
        self.lines = key_lines(text)
        self.env = env

    def of(self, loc: tuple[str, ...]) -> str:
        """``set by VAR``, ``in FILE line N``, ``in FILE``, or nothing."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.env:
                return f"set by {self.env[loc[:end]]}"
        below = [name for path, name in self.env.items() if path[: len(loc)] == loc]
        if below and loc not in self.lines:  # a section made by a variable
            return f"set by {below[0]}"
        if self.file is None:
            return ""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return f"in {self.file} line {self.lines[loc[:end]]}"
        return f"in {self.file}"

    def aws_origins(self, keys: Iterable[str]) -> dict[str, str]:
        """Where each [aws] value set came from: ``AWS_REGION``, ``aws.region in FILE line N``."""
        out = {}
        for key in keys:
            if ("aws", key) in self.env:
                out[key] = self.env[("aws", key)]
            elif ("aws", key) in self.lines:
                out[key] = f"aws.{key} {self.of(('aws', key))}"
        return out
