"""Files that hold records (rejects, DLQ exports): created with owner-only permissions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from northmigrate.errors import InputError


def open_private(path: Path, what: str) -> IO[str]:
    """``path`` created (or truncated) with mode 0600 before a byte is written, for writing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    return os.fdopen(fd, "w", encoding="utf-8")
