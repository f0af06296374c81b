"""Every help page at 80 columns: no line over 80, no line broken before the terminal had
to break it, no text eaten as markup, proper placeholders, and two or three examples that
the command line accepts."""

from __future__ import annotations

import itertools
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers import run_cli

from northmigrate.cli.app import app, build_command
from northmigrate.cli.helptext import SHORT_FLAGS

WIDTH = 80
BOX = ("│", "╭", "╰")


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += command_paths(sub, (*path, name))
    return paths


PATHS = command_paths(build_command())


def find(command: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        command = command.commands[name]
    return command


def render(path: tuple[str, ...], tmp_path: Path) -> str:
    result = run_cli(tmp_path, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def description(page: str) -> list[str]:
    """The lines of the page outside the boxes, after the usage line."""
    lines = page.splitlines()
    start = next(n for n, line in enumerate(lines) if line.strip().startswith("Usage:"))
    return [line.rstrip() for line in lines[start + 1 :] if not line.startswith(BOX)]


def examples(page: str) -> list[str]:
    lines = description(page)
    if " Examples:" not in lines:
        return []
    after = lines[lines.index(" Examples:") + 1 :]
    out = []
    for line in after:
        if not line.startswith("   "):
            break
        out.append(line.strip())
    return out


def first_word(text: str) -> str:
    return text.split()[0] if text.split() else ""


def broken_prose(lines: list[str], width: int) -> list[str]:
    """Lines that end although the next line's first word would have fit after them: a
    hard line break inside a paragraph, not the terminal's wrapping."""
    found = []
    for this, following in itertools.pairwise(lines):
        if not this.strip() or not following.strip():
            continue
        indent = len(this) - len(this.lstrip())
        if indent != len(following) - len(following.lstrip()) or this.strip().endswith(":"):
            continue
        if following.strip().startswith("northmigrate "):
            continue  # one example a line
        if len(this) + 1 + len(first_word(following)) <= width:
            found.append(f"{this!r} / {following!r}")
    return found


def panels(page: str) -> list[list[str]]:
    out: list[list[str]] = []
    for line in page.splitlines():
        if line.startswith("╭"):
            out.append([])
        elif line.startswith("│") and out:
            out[-1].append(line[1:-1].rstrip())
    return out


def broken_cells(panel: list[str]) -> list[str]:
    """The same, inside a panel's last column (the help texts)."""
    starts = Counter(
        len(line) - len(line.lstrip()) for line in panel if len(line) - len(line.lstrip()) > 4
    )
    if not starts:
        return []
    column = starts.most_common(1)[0][0]
    width = max(len(line[column:]) for line in panel)
    found = []
    for this, following in itertools.pairwise(panel):
        cell, continued = this[column:], following[column:]
        if len(following) - len(following.lstrip()) != column or continued.startswith("["):
            continue
        if cell.strip() and len(cell) + 1 + len(first_word(continued)) <= width:
            found.append(f"{cell!r} / {continued!r}")
    return found


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "northmigrate")
def test_every_help_page_reads_well_at_80_columns(path: tuple[str, ...], tmp_path: Path) -> None:
    page = render(path, tmp_path)
    assert max(len(line) for line in page.splitlines()) <= WIDTH
    assert not broken_prose(description(page), WIDTH - 1)
    for panel in panels(page):
        assert not broken_cells(panel), panel
    # placeholders: words, not types
    assert not re.findall(r"<(?:bool|str|int|float|path|int range|float range)[^>]*>", page)
    usage = next(line for line in page.splitlines() if "Usage:" in line)
    assert "{" not in usage


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "northmigrate")
def test_no_help_text_is_eaten_as_markup(path: tuple[str, ...], tmp_path: Path) -> None:
    """The page shows every word of the docstring, [deploy] included."""
    command = find(typer.main.get_command(app), path)
    page = render(path, tmp_path)
    shown = " ".join(" ".join(description(page)).split())
    assert " ".join((command.help or "").split()) in shown
    # each option's help, read across the lines of its panel cell
    cells = " ".join(page.replace("│", " ").split())
    for param in command.params:
        if getattr(param, "help", None):
            assert " ".join(param.help.split()) in cells, param.name


def parse(args: list[str]) -> None:
    """Parse an example as the CLI would, level by level, without running it."""
    command: Any = build_command()
    ctx = command.make_context("northmigrate", list(args))
    while getattr(command, "commands", None):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, rest = rest[0], rest[1:]
        command = command.commands[name]
        ctx = command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "northmigrate")
def test_every_command_has_two_or_three_examples_that_parse(
    path: tuple[str, ...], tmp_path: Path
) -> None:
    shown = examples(render(path, tmp_path))
    assert 2 <= len(shown) <= 3, f"{' '.join(path)}: examples {shown}"
    for example in shown:
        words = shlex.split(example, comments=True)
        assert words[0] == "northmigrate"
        assert all(word in words for word in path), example
        if getattr(find(build_command(), path), "commands", None) is None:
            parse(words[1:])


def test_short_flags_mean_one_thing_everywhere() -> None:
    def options(command: Any) -> list[list[str]]:
        found = [list(param.opts) for param in command.params if param.param_type_name == "option"]
        for sub in getattr(command, "commands", {}).values():
            found += options(sub)
        return found

    for opts in options(build_command()):
        for short in (opt for opt in opts if not opt.startswith("--")):
            assert short in SHORT_FLAGS, opts
            assert set(opts) - {short} <= SHORT_FLAGS[short], opts


def test_the_checks_see_a_hard_break_and_eaten_markup() -> None:
    """The page of issue 16: a command list broken mid-sentence, a section name eaten."""
    panel = [
        " provision  Create or update the main queue, its DLQ (with the redrive",
        "            policy) and what the plugin",
        "            needs (the example's DynamoDB table). Idempotent: a second run",
    ]
    assert len(broken_cells(panel)) == 1
    prose = [
        " Builds the package (northmigrate, the plugin module and their dependencies),",
        " then creates",
        " or updates the IAM role (least privilege), the log group, the",
    ]
    assert len(broken_prose(prose, WIDTH - 1)) == 1
