"""The function's configuration: the settings it needs as ``NORTHMIGRATE_*`` variables.

The function reads them as any run does (``config.load_settings``): a variable's value is
TOML when it parses as a TOML value, else plain text. So every value is written as TOML of
its own type: a text is always quoted (a queue named ``12345``, ``2024-01-01``, ``true``,
``inf``, ``1e3`` or ``0x10`` stays that text), numbers, booleans, dates and times as
themselves, ``migration.options`` as an inline table. The environment is read back before
it is used: one that would not give back the same values (and types) is refused, rather
than deployed to fail on every invocation.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from northmigrate.aws.clients import has_credentials, shown_url
from northmigrate.config import Settings, env_value
from northmigrate.errors import ConfigError, InputError


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character escaped."""
    out = ['"']
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            raise InputError("a config value holds text that is not valid Unicode")
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    """A value as TOML text (inline) that reads back as the same value, of the same type:
    a text that looks like a number, a date or a boolean stays a quoted text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()  # TOML's dates and times are RFC 3339, as isoformat writes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise InputError(f"a config value holds a {type(value).__name__}, which TOML cannot hold")


# What the function reads from its environment: (section, key), each written as its type.
DEPLOYED_KEYS: tuple[tuple[str, str], ...] = (
    ("queue", "name"),
    ("queue", "dlq_name"),
    ("queue", "max_receive_count"),
    ("queue", "visibility_timeout"),
    ("migration", "plugin"),
    ("migration", "options"),
    ("worker", "concurrency"),
    ("worker", "backoff_base_s"),
    ("worker", "backoff_max_s"),
    ("guard", "enabled"),
    ("guard", "window"),
    ("guard", "min_records"),
    ("guard", "failure_share"),
    ("aws", "retry_mode"),
    ("aws", "max_attempts"),
)


def env_name(section: str, key: str) -> str:
    return f"NORTHMIGRATE_{section.upper()}__{key.upper()}"


def environment(settings: Settings) -> dict[str, str]:
    """The function's configuration, as the ``NORTHMIGRATE_*`` overrides config reads: every
    value written as TOML of its own type (a queue named ``12345`` or ``2024-01-01`` is the
    text ``"12345"``, never a number or a date), checked by reading it back."""
    values: dict[str, Any] = {}
    for section, key in DEPLOYED_KEYS:
        value = getattr(getattr(settings, section), key)
        if (section, key) == ("queue", "dlq_name"):
            value = settings.queue.dead_letter_name
        values[env_name(section, key)] = value
    # What the mapping is capped at, for the function's guard (it lowers from it and puts it
    # back): the maximum concurrency, or in provisioned mode the pollers (never both: the
    # config refuses them together).
    deploy = settings.deploy
    caps = ("min_pollers", "max_pollers") if deploy.pollers else ("max_concurrency",)
    for key in caps:
        if getattr(deploy, key) is not None:
            values[env_name("deploy", key)] = getattr(deploy, key)
    url = settings.aws.endpoint_url
    if url:  # an emulator: the function talks to it as the CLI does
        if has_credentials(url):
            raise ConfigError(
                f"aws.endpoint_url {shown_url(url)} holds a user name or password, "
                "which deploy would write in clear into the function's environment (and a "
                "template)",
                hint="give the endpoint without user:password@; the function signs its calls "
                "with its role's credentials",
            )
        values[env_name("aws", "endpoint_url")] = url
    env = {name: toml_value(value) for name, value in values.items()}
    _check_reads_back(env, values)
    return env


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type, all the way down (nan is nan)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b) and not (isinstance(a, list | tuple) and isinstance(b, list)):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _check_reads_back(env: dict[str, str], values: dict[str, Any]) -> None:
    """Refuse an environment the function would read otherwise than it was meant (a deploy
    that reports success while every invocation fails to load its config)."""
    for name, text in env.items():
        if not _same(env_value(text), values[name]):
            raise InputError(
                f"{name} would not read back as the value it holds in the config",
                hint="report this: northmigrate cannot write that value for the function",
            )
