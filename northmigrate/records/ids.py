"""How a record is named in every output: its record id.

A record id is the value of the migration's key field (``Migration.key``) as text. When that
field is sensitive (``Migration.sensitive`` names it, or a parent of it), the value itself
must not be shown, yet reconcile, ``--where record_id=`` and the failure history need a name
that stays the same for the same record. So the id is then a keyed digest of the value:
``h:`` and 24 hex digits of an HMAC-SHA256 of the migration's name and the value, under a
secret that never leaves the operator's machine:

1. ``NORTHMIGRATE_RECORD_ID_KEY``, when it is set (16 characters or more): set the same text
   wherever ids are made and compared (every machine that runs ``validate``, ``enqueue`` or
   ``reconcile`` for one migration);
2. otherwise the user's resume key (``$XDG_CONFIG_HOME/northmigrate/resume.key``, made on
   first use, mode 0600; see ``northmigrate.sources.resume_key``, whose ``record_ids`` makes
   the ids ``validate``, ``enqueue`` and ``reconcile`` use): ids stay the same for one user
   on one machine.

An id is made when a record is read (``validate``, ``enqueue``, ``reconcile``) and travels in
the envelope and the ``northmigrate.record_id`` attribute, so the worker and the Lambda
function never need the secret. The digest names the record without revealing it: without
the secret, a 9-digit tax id cannot be found by trying every one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from northmigrate.errors import InputError

ENV_KEY = "NORTHMIGRATE_RECORD_ID_KEY"
PREFIX = "h:"
DIGITS = 24  # hex digits of the digest kept: 96 bits, no two records of a source collide
MIN_SECRET = 16
_DIGEST = re.compile(rf"\Ah:[0-9a-f]{{{DIGITS}}}\Z")

Secret = Callable[[], bytes]


def key_is_sensitive(key: str, sensitive: Iterable[str]) -> bool:
    """Whether the field ``key`` is one of ``sensitive`` or inside one of them."""
    return any(key == path or key.startswith(f"{path}.") for path in sensitive)


def is_digest(record_id: str) -> bool:
    """Whether ``record_id`` is a digest made here (``h:`` and 24 hex digits)."""
    return bool(_DIGEST.match(record_id))


def secret_from_env(fallback: Secret | None = None) -> bytes:
    """The secret record ids are keyed with: ``NORTHMIGRATE_RECORD_ID_KEY``, else what
    ``fallback`` gives (the CLI passes the user's resume key; see the module docstring)."""
    given = os.environ.get(ENV_KEY)
    if given is None and fallback is not None:
        return fallback()
    if given is None or len(given.strip()) < MIN_SECRET:
        raise InputError(
            f"{ENV_KEY} is {'not set' if given is None else 'shorter than 16 characters'}: "
            "the migration's key is sensitive, and record ids are digests keyed by it",
            hint="set it to a long random text, the same wherever records are read",
        )
    return given.strip().encode("utf-8")


class RecordIds:
    """Names records of one migration: the key's value, or its digest when it is sensitive.

    ``secret`` is called once, on the first digest (a migration whose key is not sensitive
    never reads it)."""

    def __init__(
        self, migration_name: str, key: str, sensitive: Iterable[str], secret: Secret | None
    ) -> None:
        self.name = migration_name
        self.key = key
        self.masked = key_is_sensitive(key, sensitive)
        self._secret_of = secret or secret_from_env
        self._secret: bytes | None = None

    @classmethod
    def for_migration(cls, migration: Any, secret: Secret | None = None) -> RecordIds:
        return cls(migration.name, migration.key, migration.sensitive, secret)

    def of(self, value: Any) -> str:
        """The id of a record whose key field holds ``value``."""
        text = str(value)
        if not self.masked:
            return text
        if self._secret is None:
            self._secret = self._secret_of()
        value_bytes = text.encode("utf-8", "surrogatepass")
        message = b"northmigrate record id\0" + self.name.encode() + b"\0" + value_bytes
        digest = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        return PREFIX + digest[:DIGITS]

    def of_record(self, record: Any) -> str:
        """The id of a validated record (a model of the migration)."""
        return self.of(getattr(record, self.key))
