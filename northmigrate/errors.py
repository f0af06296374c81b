"""One exception tree for the library; each class carries the CLI exit code it maps to.

Only the CLI's entry point turns these into ``Error: …`` lines and exit codes. The library
raises them with ``raise … from`` so that ``--debug`` shows the cause.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_AWS = 3
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # an unexpected internal error: a bug (outside the contract's codes)


class NorthmigrateError(Exception):
    """Root of every error northmigrate raises on purpose."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(NorthmigrateError):
    """The configuration is missing, unreadable or invalid (exit 2)."""

    exit_code = EXIT_USAGE


class InputError(NorthmigrateError):
    """A source cannot be read, or a flag's value is unusable (exit 2)."""

    exit_code = EXIT_USAGE


class PluginError(NorthmigrateError):
    """The migration plugin cannot be imported or is not a Migration (exit 2)."""

    exit_code = EXIT_USAGE


class AwsError(NorthmigrateError):
    """AWS answered with an error, or could not be reached (exit 3)."""

    exit_code = EXIT_AWS


class Interrupted(NorthmigrateError):
    """The user interrupted the command (exit 130)."""

    exit_code = EXIT_INTERRUPTED


class Refused(NorthmigrateError):
    """A step that would not be safe (two consumers on one queue, a failed check), refused
    before it changed anything (exit 1: a person decides what next)."""

    exit_code = EXIT_ATTENTION


# pydantic's words for a bad value, as a person reads them ("--concurrency: must be 1 or
# more", not "Input should be greater than or equal to 1"; never "Value error, ...").
_PLAIN_WORDS = (
    (re.compile(r"(?:Value error|Assertion failed), "), ""),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be \1 or more"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be \1 or less"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be less than \1"),
    (
        re.compile(r"Input should be a valid integer, unable to parse string as an integer"),
        "must be a whole number",
    ),
    (
        re.compile(r"Input should be a valid number, unable to parse string as a number"),
        "must be a number",
    ),
    (
        re.compile(r"Input should be a valid boolean, unable to interpret input"),
        "must be true or false",
    ),
    (re.compile(r"Input should be "), "must be "),
)


def plain_words(text: str) -> str:
    """``text`` (a usage or config error) with pydantic's phrasing said plainly."""
    for pattern, replacement in _PLAIN_WORDS:
        text = pattern.sub(replacement, text)
    return text
