"""Sources of records: files (JSONL, JSON array, CSV, optionally gzip), stdin, and URIs.
May import ``records`` (the parse path, the item), ``aws``, ``redact`` and the base modules.

Every reader streams: memory stays flat in the size of the source. A reader yields one
``SourceItem`` per record (or per unreadable line), numbered by the 1-based line where the
record starts, and never stops at a bad record; only a source that cannot be opened, or a
file whose structure cannot be resynchronised (a broken JSON array), raises ``SourceError``.

The modules: ``base`` (``SourceItem``, the ``Source`` protocol), ``names`` (what a name
points at), ``options`` (``ScanOptions``, and which flag applies to which source), ``open``
(``open_source``), ``stream`` and ``files`` (bytes, and the JSONL, JSON and CSV readers),
``s3``, ``dynamodb`` and ``pages`` (a parallel table scan), ``filters`` (``--filter``),
``resume`` and ``resume_key`` (where a table scan can safely resume from).
"""

from __future__ import annotations

from northmigrate.sources.base import Source, SourceError, SourceItem
from northmigrate.sources.open import open_source
from northmigrate.sources.options import ScanOptions, check_options

__all__ = ["ScanOptions", "Source", "SourceError", "SourceItem", "check_options", "open_source"]
