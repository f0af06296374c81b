"""The resume key: the secret that keys every digest of a resume state.

32 random bytes in ``$XDG_CONFIG_HOME/northmigrate/resume.key`` (by default
``~/.config/northmigrate/resume.key``, mode 0600 in a 0700 directory), made on first use and
never written into a state file (see ``northmigrate.sources.resume``). Whoever can read the
key can read the user's AWS credentials beside it, and so the table itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Any

from northmigrate.errors import InputError
from northmigrate.privatefile import private_dir, read_private
from northmigrate.records.ids import RecordIds, secret_from_env


def key_file() -> Path:
    """Where the resume key lives (``$XDG_CONFIG_HOME/northmigrate/resume.key``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "northmigrate" / "resume.key"


class ResumeKey:
    """The secret that keys every digest of a resume state; never kept in a state file."""

    SIZE = 32

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a resume key needs at least 16 bytes")
        self._secret = secret
        ident = hmac.new(secret, b"northmigrate resume key id", hashlib.sha256).hexdigest()
        self.key_id = ident[:16]  # names the key in a state file; reveals nothing of it

    @classmethod
    def find(cls) -> ResumeKey | None:
        """The user's resume key, or None when there is none."""
        path = key_file()
        data = read_private(path, "resume key")
        return None if data is None else cls._parse(path, data)

    @classmethod
    def load(cls) -> ResumeKey:
        """The user's resume key, made (mode 0600, in a 0700 directory) when there is none."""
        path = key_file()
        data = read_private(path, "resume key")
        if data is None:
            private_dir(path.parent, "resume key directory")
            secret = os.urandom(cls.SIZE)
            try:
                fd = os.open(
                    path,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                    0o600,
                )
            except FileExistsError:  # made meanwhile by another run: use that one,
                for _ in range(40):  # once it is written (a few bytes, at once)
                    data = read_private(path, "resume key")
                    if data and data.strip():
                        break
                    time.sleep(0.05)
            except OSError as exc:
                raise InputError(f"cannot write resume key {path}: {exc.strerror or exc}") from exc
            else:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secret.hex() + "\n")
                return cls(secret)
        return cls._parse(path, data or b"")

    @classmethod
    def _parse(cls, path: Path, data: bytes) -> ResumeKey:
        try:
            return cls(bytes.fromhex(data.decode("ascii").strip()))
        except ValueError as exc:
            raise InputError(
                f"resume key {path} is damaged",
                hint="delete it and the resume states written with it to start over",
            ) from exc

    def digest(self, purpose: str, salt: bytes, data: bytes) -> str:
        message = b"northmigrate resume\0" + purpose.encode() + b"\0" + salt + data
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


def record_ids(migration: Any) -> RecordIds:
    """How the commands name the records of ``migration``: when its key is sensitive, by a
    digest keyed by ``NORTHMIGRATE_RECORD_ID_KEY`` or, without it, by the resume key."""

    def secret() -> bytes:
        return secret_from_env(
            lambda: ResumeKey.load().digest("record id key", b"", b"").encode("ascii")
        )

    return RecordIds.for_migration(migration, secret)
