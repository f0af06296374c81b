"""Records read and checked: the one parse path (``codec``), validation, the envelope a message
carries, the item a source yields, rejects, and the sample generator.

May import: ``aws`` (the SQS layer's size and FIFO rules), ``plugin``, ``redact`` and the base
modules. The face re-exports the parse path: ``records.loads``, ``records.dumps``, ...
"""

from northmigrate.records.codec import (
    MAX_INT_DIGITS,
    RecordSyntaxError,
    build,
    dumps,
    loads,
    pretty,
    validate,
)

__all__ = ["MAX_INT_DIGITS", "RecordSyntaxError", "build", "dumps", "loads", "pretty", "validate"]
