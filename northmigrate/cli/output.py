r"""Rendering: a rich table on stdout, or exactly one JSON object; everything else on stderr.

Data is shown as text, never obeyed. Whatever comes from records, messages, files or the
config (ids, reasons, field values, bodies, file and queue names, error texts) reaches the
terminal through ``plain``, ``shown`` or ``markup``: rich markup in it is not interpreted, and
control characters are written the way a Python string literal writes them (``\x1b``,
``\r``, ``\x9b``, ``\u202e``), so no escape sequence, bidi override or carriage return in
the data can act on the terminal. Markup belongs to the code's own text only. JSON output
keeps the exact strings (JSON escapes control characters itself).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.errors import MarkupError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from northmigrate import records
from northmigrate.cli.flags import global_output

if TYPE_CHECKING:
    from northmigrate.control.provision import Change


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OUTPUT_OPTION = typer.Option(
    OutputFormat.table,
    "--output",
    "-o",
    envvar="NORTHMIGRATE_OUTPUT",
    case_sensitive=False,
    metavar="FORMAT",
    callback=global_output,
    show_default=False,
    show_envvar=False,
    help="table (default) for people, json for scripts: one JSON object on stdout. "
    "Also $NORTHMIGRATE_OUTPUT, or before the command.",
)


# Format characters that scripts and emoji need (zero-width non-joiner and joiner): kept.
_KEPT = frozenset("\u200c\u200d")
# Unicode categories written escaped: controls (C0, DEL, C1), format characters (bidi
# overrides and isolates, zero-width spaces, …), lone surrogates, line/paragraph separators.
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SLOT = "\ue000"  # a private-use character marks where data goes in a template


def _visible(char: str) -> str:
    if char in _KEPT or unicodedata.category(char) not in _ESCAPED:
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def plain(value: object, *, newlines: bool = False) -> str:
    r"""``value`` as text a terminal shows and does not obey: each control or format character
    written escaped (``\x1b``, ``\r``, ``\u202e``); ``newlines`` keeps line breaks as such."""
    text = str(value)
    if text.isprintable():  # the common case: nothing to do
        return text
    if newlines:
        return "\n".join(plain(line) for line in text.split("\n"))
    return "".join(char if char.isprintable() else _visible(char) for char in text)


def shown(value: object, style: str = "") -> Text:
    """Data for a table cell or a console line: never read as markup, controls made visible."""
    return Text(plain(value), style=style)


def markup(template: str, *data: object) -> Text:
    """The code's own markup ``template`` with each ``{}`` in it filled by one item of
    ``data``, shown as text: the data never goes through the markup parser, so it can neither
    open nor close a tag; it takes the style of the place it fills."""
    if not data:
        return Text.from_markup(template, emoji=False)
    parts = template.split("{}")
    if len(parts) != len(data) + 1:
        raise ValueError(f"{template!r} has {len(parts) - 1} slots for {len(data)} values")
    text = Text.from_markup(_SLOT.join(parts), emoji=False)
    slots = [n for n, char in enumerate(text.plain) if char == _SLOT]
    out = Text(style=text.style)
    start = 0
    for offset, value in zip(slots, data, strict=True):
        out.append_text(text[start:offset])
        piece = shown(value)
        for span in text.spans:
            if span.start <= offset < span.end:
                piece.stylize(span.style)
        out.append_text(piece)
        start = offset + 1
    out.append_text(text[start:])
    return out


def stdout() -> Console:
    return Console(soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def say(template: str, *data: object) -> None:
    """A line for the operator, on stderr (never pollutes JSON on stdout): ``template`` is
    the code's markup, each ``{}`` in it one item of ``data``, shown as text."""
    try:
        line = markup(template, *data)
    except MarkupError:  # data put into the template itself: shown as text, never a crash
        line = shown(template)
    stderr().print(line, highlight=False)


def _json(data: dict[str, Any]) -> None:
    """One JSON object on one line: a record's numbers as the exact numbers they are
    (``records.dumps``), everything past ASCII escaped, a value JSON has no type for (a
    path, a time) as its text."""
    sys.stdout.write(records.dumps(_as_json(data), ascii_only=True) + "\n")
    sys.stdout.flush()


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


def emit(output: OutputFormat, data: dict[str, Any], table: Callable[[Console], None]) -> None:
    """The result: ``table`` on stdout, or with ``--output json`` one JSON object.

    The work is done by now: a table that fails to render (a bug) must not turn it into a
    failure, so the result is then written as JSON instead, with a line on stderr."""
    if output == OutputFormat.json:
        _json(data)
        return
    try:
        table(stdout())
    except OSError:  # a closed pipe, a full disk: not a rendering problem
        raise
    except Exception as exc:
        say(
            "[yellow]could not show the table ({}: {}); the result as JSON:[/yellow]",
            type(exc).__name__,
            exc,
        )
        _json(data)


def cell(value: Any) -> Text:
    """A table cell for a value: ``—`` for None, a rich Text as it is, anything else as data."""
    if value is None:
        return Text("—")
    return value if isinstance(value, Text) else shown(value)


def key_value_table(title: str, rows: list[tuple[Any, Any]]) -> Table:
    """Two columns, names and values, both shown as data (a reason can be a name)."""
    out = Table(title=title, show_header=False, title_justify="left")
    out.add_column(style="bold")
    out.add_column(justify="right")
    for name, value in rows:
        out.add_row(cell(name), cell(value))
    return out


def changes_table(title: str, changes: Iterable[Change]) -> Table:
    """What ``deploy`` or ``destroy`` did (or would do), one row per resource."""
    out = Table(title=title, title_justify="left")
    for column in ("resource", "name", "action", "changed"):
        out.add_column(column, overflow="fold")
    for change in changes:
        row = (change.resource, change.name, change.action, ", ".join(change.changed))
        out.add_row(*map(shown, row))
    return out


class PlainFormatter(logging.Formatter):
    """Log lines with the data in them made visible (tracebacks keep their line breaks)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return plain(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return plain(super().formatException(ei), newlines=True)

    def formatStack(self, stack_info: str) -> str:
        return plain(super().formatStack(stack_info), newlines=True)


def interactive(output: OutputFormat) -> bool:
    return output == OutputFormat.table and sys.stderr.isatty() and os.environ.get("CI") is None


@contextmanager
def progress_bar(
    output: OutputFormat, description: str, total: float | None
) -> Iterator[Callable[..., None]]:
    """An ``update(completed=…, total=…, description=…)`` callable; a no-op off a terminal."""
    if not interactive(output):
        yield lambda **_: None
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    columns += [MofNCompleteColumn()] if total is None else []
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(**fields: Any) -> None:
            bar.update(task, **fields)

        yield update


def age_text(seconds: float | None) -> str | None:
    """A duration as an operator reads it: 90s, 12m, 3h 5m, 2d 4h."""
    if seconds is None:
        return None
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
