"""The global flags, before or after the sub-command, as the AWS CLI takes them.

``--output``, ``--region``, ``--profile`` and ``--endpoint-url`` are options of the root
command (``northmigrate --region eu-west-1 status``); :func:`attach` gives every
sub-command a copy of each it does not have itself (``northmigrate status --region
eu-west-1``), shown under "Global options". Either way the value lands in the ``State``;
the one written last (the one after the sub-command) wins.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import typer

from northmigrate.cli.state import state

GLOBAL_FLAGS = ("output", "region", "profile", "endpoint_url")
PANEL = "Global options"


def _store(name: str) -> Callable[[Any, Any, Any], Any]:
    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if value is not None and not ctx.resilient_parsing:
            setattr(state(ctx), name, str(value))
        return value

    return callback


def attach(command: Any, root: Any) -> None:
    """Give every sub-command below ``command`` the root's global flags it lacks."""
    flags = [param for param in root.params if param.name in GLOBAL_FLAGS]
    for sub in getattr(command, "commands", {}).values():
        if getattr(sub, "commands", None):
            attach(sub, root)
            continue
        have = {param.name for param in sub.params}
        for flag in flags:
            if flag.name in have:
                continue
            added = copy.copy(flag)
            added.expose_value = False
            added.callback = _store(flag.name)
            added.rich_help_panel = PANEL
            sub.params.append(added)


def global_output(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """A command's own ``--output``: given after the command, it wins; else a global
    ``--output`` given before the command; else $NORTHMIGRATE_OUTPUT; else table."""
    source = ctx.get_parameter_source(param.name or "output")
    given = state(ctx).output
    if given is not None and getattr(source, "name", "") != "COMMANDLINE":
        return type(value)(given) if value is not None else given
    return value
