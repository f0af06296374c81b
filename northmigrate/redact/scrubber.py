"""The scrubber: masks a record's values in any text, in every form (see the package's
docstring for the rules)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from northmigrate.redact.errors import error_text
from northmigrate.redact.fields import MASK, leaves, sensitive_leaves
from northmigrate.redact.forms import ELLIPSES, LONG, MIN_FRAGMENT, escapes, renderings

PASSES = 4  # scrubbing repeats on its own output at most this often


# -- the scrubber --------------------------------------------------------------------------


def scrub(text: str, values: Iterable[object]) -> str:
    """``text`` with every form of each value masked (see the module docstring).

    Builds a scrubber for one text; a caller with several texts for one record should keep a
    ``Scrubber``."""
    return Scrubber.for_values(values).scrub(text)


class Scrubber:
    """Masks the values of one record in texts: build once per record, scrub many texts."""

    __slots__ = ("_plan", "_values")

    def __init__(self, values: tuple[object, ...]) -> None:
        self._values = values
        self._plan: _Plan | None = None

    @classmethod
    def for_values(cls, values: Iterable[object]) -> Scrubber:
        """A scrubber for ``values``: strings, numbers, dates, UUIDs, enums, bytes; dicts,
        lists and models are walked into. Cheap: the forms are built on the first scrub."""
        if isinstance(values, str | bytes | bytearray):  # one value, not its characters
            values = [values]
        return cls(tuple(leaf for leaf in leaves(list(values)) if not isinstance(leaf, bool)))

    @classmethod
    def for_record(cls, record: Any, paths: Iterable[str]) -> Scrubber:
        """A scrubber for the sensitive fields of a JSON record or a pydantic model."""
        return cls.for_values(sensitive_leaves(record, paths))

    def extended(self, values: Iterable[object]) -> Scrubber:
        """A scrubber for this one's values and ``values`` (say, the typed model's after the
        JSON record's)."""
        return Scrubber.for_values([*self._values, *values])

    def __bool__(self) -> bool:
        return bool(self._values)

    def scrub(self, text: str) -> str:
        """``text`` with every form of every value masked; ``text`` itself when none is in
        it."""
        if not self._values or not text:
            return text
        if self._plan is None:
            self._plan = _Plan.build(self._values)
        for _ in range(PASSES):
            spans = self._plan.spans(text)
            if not spans:
                break
            masked = _mask(text, spans)
            if masked == text:
                break
            text = masked
        return text

    def describe(self, exc: BaseException) -> str:
        """``error_text(exc)``, scrubbed: how an exception is told to people."""
        return self.scrub(error_text(exc))

    def scrub_tree(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string in it scrubbed (keys are kept)."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_tree(item) for item in value]
        if isinstance(value, dict):
            return {key: self.scrub_tree(item) for key, item in value.items()}
        return value


@dataclass(frozen=True, slots=True)
class _Form:
    """One spelling to look for. ``start``/``end`` is the part of it that is masked;
    ``glued_start``/``glued_end``: refuse a match glued to a word character on that side."""

    text: str
    start: int
    end: int
    glued_start: bool = False
    glued_end: bool = False

    @property
    def rank(self) -> tuple[int, int, int]:
        """Of two forms with one text, the one that masks more, with fewer conditions."""
        return (self.end - self.start, -(self.glued_start + self.glued_end), -self.start)


@dataclass(frozen=True, slots=True)
class _Plan:
    forms: tuple[_Form, ...]
    fragments: tuple[str, ...]  # forms whose heads and tails are masked beside an ellipsis

    @classmethod
    def build(cls, values: Iterable[object]) -> _Plan:
        forms: dict[str, _Form] = {}
        fragments: set[str] = set()
        for rendering in {r for value in values for r in renderings(value)}:
            if not rendering.strip() or not rendering.strip("*"):
                continue
            for spelled in escapes(rendering):
                for form in _forms(spelled, len(rendering)):
                    known = forms.get(form.text)
                    if known is None or form.rank > known.rank:
                        forms[form.text] = form
                if len(rendering) >= LONG and len(spelled) > MIN_FRAGMENT:
                    fragments.add(spelled)
        ordered = sorted(forms.values(), key=lambda f: (-len(f.text), f.text))
        return cls(tuple(ordered), tuple(sorted(fragments, key=lambda f: (-len(f), f))))

    def spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for form in self.forms:
            at = text.find(form.text)
            while at >= 0:
                end = at + len(form.text)
                if not (
                    (form.glued_start and at > 0 and _word(text[at - 1]))
                    or (form.glued_end and end < len(text) and _word(text[end]))
                ):
                    spans.append((at + form.start, at + form.end))
                at = text.find(form.text, at + 1)
        if self.fragments:
            for ellipsis in ELLIPSES:
                at = text.find(ellipsis)
                while at >= 0:
                    for fragment in self.fragments:
                        _head(text, at, fragment, spans)
                        _tail(text, at + len(ellipsis), fragment, spans)
                    at = text.find(ellipsis, at + 1)
        return spans


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _forms(spelled: str, length: int) -> Iterator[_Form]:
    """How one spelling of a rendering ``length`` characters long is looked for."""
    size = len(spelled)
    if length >= LONG:
        yield _Form(spelled, 0, size)
    elif length == 2:
        yield _Form(spelled, 0, size, _word(spelled[0]), _word(spelled[-1]))
    else:
        for quote in ("'", '"', "\\'", '\\"'):
            yield _Form(f"{quote}{spelled}{quote}", len(quote), len(quote) + size)
        for before in ("=", "= ", ":", ": "):
            yield _Form(f"{before}{spelled}", len(before), len(before) + size, False, True)


def _head(text: str, ellipsis: int, form: str, spans: list[tuple[int, int]]) -> None:
    """Mask the longest start of ``form`` (``MIN_FRAGMENT`` or more) that ends at
    ``ellipsis``."""
    key = form[:MIN_FRAGMENT]
    at = text.find(key, max(0, ellipsis - len(form)), ellipsis)
    while at >= 0:
        if form.startswith(text[at:ellipsis]):
            spans.append((at, ellipsis))
            return
        at = text.find(key, at + 1, ellipsis)


def _tail(text: str, after: int, form: str, spans: list[tuple[int, int]]) -> None:
    """Mask the longest end of ``form`` (``MIN_FRAGMENT`` or more) that starts at
    ``after``."""
    key = form[-MIN_FRAGMENT:]
    at = text.rfind(key, after, min(len(text), after + len(form)))
    while at >= 0:
        end = at + MIN_FRAGMENT
        if form.endswith(text[after:end]):
            spans.append((after, end))
            return
        at = text.rfind(key, after, end - 1)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    done = 0
    start, end = -1, -1
    for span_start, span_end in sorted(spans):
        if span_start <= end:
            end = max(end, span_end)
            continue
        if end >= 0:
            out.append(text[done:start])
            out.append(MASK)
            done = end
        start, end = span_start, span_end
    out.append(text[done:start])
    out.append(MASK)
    out.append(text[end:])
    return "".join(out)
