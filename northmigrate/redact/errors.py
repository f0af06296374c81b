"""Exceptions and validation errors told without the inputs pydantic quotes."""

from __future__ import annotations

from pydantic import ValidationError

# -- exceptions and validation errors ------------------------------------------------------

_INPUT_VALUE = ", input_value="
_INPUT_TYPE = ", input_type="


def validation_text(exc: ValidationError, shown: int = 5) -> str:
    """``loc: msg [type=…]; …`` for the first ``shown`` problems, never with input values.

    A custom validator's message may quote the value: scrub the result (``describe``)."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(str(part) for part in p['loc']) or 'record'}: {p['msg']} [type={p['type']}]"
        for p in problems[:shown]
    ]
    if len(problems) > shown:
        parts.append(f"and {len(problems) - shown} more")
    return "; ".join(parts)


def strip_input_values(text: str) -> str:
    """``text`` without pydantic's ``, input_value=…, input_type=…`` (the message of a
    validation error, embedded in another message, say). The type of error stays."""
    at = text.find(_INPUT_VALUE)
    if at < 0:
        return text
    out: list[str] = []
    done = 0
    while at >= 0:
        line_end = text.find("\n", at)
        line_end = len(text) if line_end < 0 else line_end
        type_at = text.rfind(_INPUT_TYPE, at, line_end)  # the last: a value may hold the words
        close = text.find("]", type_at, line_end) if type_at >= 0 else -1
        out.append(text[done:at])
        done = close if close >= 0 else line_end
        at = text.find(_INPUT_VALUE, done)
    out.append(text[done:])
    return "".join(out)


def error_text(exc: BaseException) -> str:
    """How an exception is told to people, before scrubbing: a validation error by
    ``validation_text``, anything else by ``str`` without pydantic's input values."""
    if isinstance(exc, ValidationError):
        return validation_text(exc)
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the failure it reports
        return f"<{type(exc).__name__}: message could not be rendered>"
    return strip_input_values(text)
