"""Keep sensitive fields out of sight.
May import only the base modules: every room above asks it.

Paths are dotted field names; a list on the way is walked into, so ``owners.tax_id`` names
the tax id of every owner. ``redact`` masks those fields in a record. A ``Scrubber`` masks
their values wherever they appear inside free text: every text that leaves the process and
came from an exception or a validation error goes through ``Scrubber.scrub`` (or
``Scrubber.describe``, which renders the exception first) with the values of its record.

What a scrubber masks
    A value is masked in every form a text may give it, not only ``str(value)``:

    * each *rendering* of the value: its ``str``, and a string stripped of surrounding
      whitespace; for dates, datetimes and times the ISO forms (``1980-02-03``,
      ``1980-02-03T04:05:00+00:00``, ``1980-02-03 04:05:00``), the ISO form without the
      offset (so ``…Z`` and ``…+00:00`` both lose the date and time), the ``repr`` without
      its module (``date(1980, 2, 3)``) and, since a timezone's repr differs between
      pydantic and the standard library, the repr up to the timezone
      (``datetime(1980, 2, 3, 4, 5``); a datetime's date on its own; a ``Decimal``'s
      ``str`` (its repr ``Decimal('12.30')`` holds it), fixed-point and normalised forms; a
      float's ``repr``, ``Decimal``, fixed-point and pydantic JSON spellings (``1e-05``,
      ``1E-5``, ``0.00001``, ``1e-5``); a UUID in lower and upper case, with and without
      hyphens; an enum member's value and, when the scrubber has the member itself, its
      name and ``Class.NAME``; bytes as ``repr`` writes them and as UTF-8 text;
    * each rendering *escaped* as ``repr`` (single- or double-quoted), ``ascii`` and
      ``json.dumps`` (``ensure_ascii`` true and false) write a string's body, and the same
      escapes applied twice (the repr of a message that holds a repr);
    * a string from a JSON record stands for the typed value pydantic makes of it: an ISO
      date, datetime or time string also masks that value's reprs, a number string its
      ``Decimal`` forms, a UUID string its canonical forms. So the worker's JSON record is
      enough to scrub a handler's ``f"{record!r}"``, except an enum member's name, which
      only the model knows: where there is a model, scrub with its values too
      (``Scrubber.for_record(model, paths)`` or ``extended``).

    Matching is exact: a value a handler has changed (upper-cased, sliced, reformatted
    with ``strftime``) is not recognised, except as a truncated fragment (below).

Short values
    A rendering of 3 characters or more is masked wherever it occurs, inside words too.
    One of 2 characters is masked only where it stands as a whole token: not glued to a
    letter, digit or ``_`` on a side where it starts or ends with one (``'QZ'``, ``QZ,``,
    ``=42`` are masked; ``QZX``, ``420`` are not). One of 1 character is masked only where
    it is rendered as a value: quoted (``'F'``, ``"F"``, ``\\'F\\'``, ``\\"F\\"``) or
    right after ``=``, ``= ``, ``:`` or ``: `` and not followed by a letter, digit or ``_``
    (``sex='F'``, ``children=7``, ``"children": 7``). A bare ``7`` or ``F`` in prose stays:
    masking every ``1`` would wreck line numbers, list indexes and counts, and one
    character says little on its own. Booleans and ``None`` are never masked in text
    (``redact`` still masks the field itself), nor are renderings that are empty, only
    whitespace or only ``*``.

Truncated values
    pydantic-core writes an ``input_value`` whose repr is over 50 bytes as its first 25
    bytes, ``...`` and its last 24 bytes (cut on character boundaries): for a long string
    about 24 and 23 characters of it, neither being the whole value; when the input is a
    whole record, the cuts fall anywhere inside its values. Other code truncates with
    ``…``. So a *fragment* is masked too: a piece of ``MIN_FRAGMENT`` (3) characters or more
    that is the start of a form (a rendering, or an escape of one) and ends right before
    ``...`` or ``…``, or that is the end of a form and starts right after one. At most 2
    characters of a value's start or end can remain beside an ellipsis; 3 matches the
    shortest value masked anywhere, and a fragment is only looked for beside an ellipsis,
    which keeps ordinary text safe from it.

Overlaps
    Every occurrence of every form is found, overlapping ones included; the spans are
    merged, and each merged span becomes one ``***``. Nothing of two overlapping values
    survives, whichever is longer, and touching values give one ``***``. Scrubbing runs
    again on its own output (at most 4 passes, in practice 2) in case a mask completes a
    value that holds ``*``; ``scrub`` is idempotent.

Cost
    ``Scrubber.for_values`` only keeps the values; the forms are built on the first
    ``scrub``, so a scrubber can be made for every record and costs little more than the
    walk over its values for records that do not fail. Scrubbing is a plain ``str.find``
    loop over the forms and, only when the text holds an ellipsis, a look no longer than
    each form on either side of each ellipsis: no regular expression, linear in the text
    for one record's forms. Measured with ten values (names, a date, tax ids, emails,
    phones, a Decimal) on a shared 2-core machine: making the scrubber 12-17 µs, building
    its forms 55-85 µs more (on the first scrub); scrubbing a 200-character reason 3 µs
    when it holds no value, 8-12 µs when it holds six, 27-45 µs for a truncated validation
    error, 55-75 µs for 2 KB holding 66. A text with no value in it is returned as the
    very same object.

Validation errors
    ``validation_text`` renders a ``pydantic.ValidationError`` as ``loc: msg [type=…]``
    without input values; a custom validator's message (``Value error, <text>``) may quote
    the value itself, so its output still goes through the scrubber (``describe`` does
    both). ``strip_input_values`` removes pydantic's ``input_value=…`` from any text that
    embeds a validation error's message; ``error_text`` renders any exception with both.
"""

from northmigrate.redact.errors import error_text, strip_input_values, validation_text
from northmigrate.redact.fields import MASK, redact, sensitive_leaves, sensitive_values
from northmigrate.redact.forms import MIN_FRAGMENT
from northmigrate.redact.scrubber import Scrubber, scrub

__all__ = [
    "MASK",
    "MIN_FRAGMENT",
    "Scrubber",
    "error_text",
    "redact",
    "scrub",
    "sensitive_leaves",
    "sensitive_values",
    "strip_input_values",
    "validation_text",
]
