"""Help pages that read well at 80 columns, whatever the source's line breaks.

Docstrings and option help are written for the source (lines of at most 100 characters);
:func:`tidy` prepares every command of the tree for typer's rich help:

- prose paragraphs become one line each, for the terminal to wrap (typer's rich mode keeps a
  docstring's hard line breaks, which cut the command lists mid-sentence);
- a block, a paragraph whose first line ends with ``:`` and whose other lines are indented
  (``Examples:``), keeps its lines: one example a line;
- text is escaped for rich markup: ``[deploy]`` stays ``[deploy]``, never a style tag;
- placeholders: a flag shows none (not ``<bool>``), a value shows a word (``N``, ``S``, ``R``,
  ``FILE``, ``DIR``, ``SOURCE``; a choice as ``table|json``), never ``<int range>`` or
  ``{source}``.

Short flags mean one thing everywhere: ``-h`` help, ``-c`` config, ``-o`` output, ``-n``
how many (``--count``, ``--limit``, ``--max``, ``--max-messages``), ``-j`` how many at once
(``--concurrency``), ``-p`` port. :data:`SHORT_FLAGS` holds the rule and a test checks it.
"""

from __future__ import annotations

import inspect
from typing import Any

from rich.markup import escape

# The one meaning of each short flag: its long forms.
SHORT_FLAGS = {
    "-h": {"--help"},
    "-c": {"--config"},
    "-o": {"--output"},
    "-n": {"--count", "--limit", "--max", "--max-messages"},
    "-j": {"--concurrency"},
    "-p": {"--port"},
}
_KEEP = "[none] [/none]"  # one space that no dedent removes
_SECONDS = ("grace", "interval", "wait", "timeout", "canary_wait", "minutes")


def reflow(text: str) -> str:
    """``text`` with each prose paragraph on one line and blocks kept, escaped for rich."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for paragraph in paragraphs:
        lines = paragraph.split("\n")
        block = len(lines) > 1 and lines[0].endswith(":")
        block = block and all(line.startswith("  ") for line in lines[1:])
        if block:
            # typer dedents the text it shows (inspect.cleandoc, whose first line does not
            # count): a block's first space is an empty markup span, so that the lines keep
            # their indentation wherever the block stands
            body = [_KEEP + escape(line[1:]) for line in lines[1:]]
            out.append("\n".join([escape(lines[0]), *body]))
        else:
            out.append(escape(" ".join(line.strip() for line in lines)))
    return "\n\n".join(out)


def placeholder(param: Any) -> str:
    """The word a help page shows for an option's or an argument's value."""
    name = str(param.name or "").lower()
    described = getattr(param, "type_descriptor", None)
    choices = getattr(described, "choices", None)
    if choices:
        return "|".join(str(getattr(choice, "value", choice)) for choice in choices)
    kind = getattr(described, "annotation", None)
    if "rate" in name:
        return "R"
    if kind is int:
        return "N"
    if kind is float:
        return "S" if any(word in name for word in _SECONDS) else "N"
    if "dir" in name or any(opt.endswith("-dir") for opt in getattr(param, "opts", ())):
        return "DIR"
    if "file" in name or getattr(described, "is_path", False):
        return "FILE"
    return name.upper()


def _no_metavar(command: Any) -> None:
    """``--help`` is made when a page is shown: it gets no placeholder either."""
    made = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


def _argument(param: Any) -> None:
    """An argument reads ``SOURCE`` in the usage line (typer writes ``{source}``) and has no
    type column (typer writes ``<str>``): typer has no setting for either."""
    name = param.metavar or placeholder(param)
    param.metavar = name
    usage = name if param.required else f"[{name}]"
    param._usage_display_name = lambda: usage
    param.display_type_rich = lambda ctx: None


def tidy(command: Any) -> None:
    """Prepare ``command`` and every command under it for the help pages."""
    if command.help:
        command.help = reflow(command.help)
        command.short_help = command.help.split("\n\n", 1)[0]
    _no_metavar(command)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = reflow(param.help)
        if getattr(param, "param_type_name", "") == "argument":
            _argument(param)
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = placeholder(param)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
