"""The plugin API: a migration is a Python module holding a ``Migration``.

The same module runs unchanged in the local worker and on Lambda. See README "Python API".
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.errors import PluginError
from northmigrate.failures import Classify
from northmigrate.failures import TargetUnavailable as TargetUnavailable  # the plugin API
from northmigrate.failures import Throttled as Throttled  # the plugin API

RecordT = TypeVar("RecordT", bound=BaseModel)


class PermanentError(Exception):
    """This record can never succeed as it is: dead-letter it at once, without retries.

    The message should say why in words an operator can act on; it is attached to the dead
    letter (with sensitive fields redacted), so never put a sensitive value in it.
    """


@dataclass
class MigrationContext:
    """What a handler gets besides its record."""

    options: Mapping[str, Any]
    aws: AwsClients
    attempt: int = 1
    message_id: str = ""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("northmigrate.plugin"))
    dry_run: bool = False


@dataclass(frozen=True)
class SetupResult:
    """One resource a plugin's ``setup`` hook ensured exists."""

    resource: str
    name: str
    action: str  # "created" | "updated" | "unchanged"


Handler = Callable[[RecordT, MigrationContext], None]
Eligible = Callable[[RecordT], bool]
Verify = Callable[[RecordT, MigrationContext], bool]
VerifyBatch = Callable[[Sequence[RecordT], MigrationContext], Sequence[bool]]
Setup = Callable[[MigrationContext], Sequence[SetupResult]]
Probe = Callable[[MigrationContext], None]


@dataclass(frozen=True)
class Migration(Generic[RecordT]):
    """A migration: a model to validate records with, and a handler that migrates one record.

    ``key`` names the field that identifies a record (idempotency, reports, filters).
    ``eligible`` decides which valid records are sent; ``verify`` tells ``reconcile`` whether a
    record is present and correct in the target; ``sensitive`` lists field names (dotted for
    nested ones; a list is walked into) that are redacted in every output unless asked for.
    ``setup`` creates what the handler needs in the target (``provision`` calls it), and
    ``iam_statements`` lists what the *function's role* needs on Lambda, that is what the
    handler calls (``deploy`` checks and uses them); what ``verify``/``verify_batch``
    (``reconcile``) and ``setup`` (``provision``) need runs with the operator's
    credentials and is the operator's to grant, not declared here.
    ``verify_batch`` answers ``verify`` for up to ``verify_batch_size`` records in one go
    (``reconcile`` prefers it when given: e.g. DynamoDB BatchGetItem).
    ``classify(exc)`` decides the kind of a handler's failure first (``"record"``,
    ``"throttled"`` or ``"outage"``; None leaves it to :mod:`northmigrate.failures`).
    ``probe(ctx)`` checks that the target answers (it raises when not); while the guard
    holds the tap closed after an outage, it is called instead of trying one record.
    """

    name: str
    model: type[RecordT]
    key: str
    handler: Handler[RecordT]
    eligible: Eligible[RecordT] | None = None
    verify: Verify[RecordT] | None = None
    sensitive: tuple[str, ...] = ()
    version: str = "1"
    setup: Setup | None = None
    iam_statements: Callable[[Mapping[str, Any], str, str], list[dict[str, Any]]] | None = None
    verify_batch: VerifyBatch[RecordT] | None = None
    verify_batch_size: int = 100
    classify: Classify | None = None
    probe: Probe | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise TypeError("Migration.name must be a non-empty string")
        if not (isinstance(self.model, type) and issubclass(self.model, BaseModel)):
            raise TypeError("Migration.model must be a pydantic BaseModel subclass")
        if self.key not in self.model.model_fields:
            raise TypeError(f"Migration.key {self.key!r} is not a field of {self.model.__name__}")
        if isinstance(self.sensitive, str):
            raise TypeError("Migration.sensitive must be a tuple of field names, not a string")

    def record_id(self, record: RecordT) -> str:
        """The key field's value as text. northmigrate's own outputs name a record by it,
        or by a keyed digest of it when the key is sensitive (``northmigrate.records.ids``);
        a plugin that logs it must mask it itself then."""
        return str(getattr(record, self.key))

    def is_eligible(self, record: RecordT) -> bool:
        return True if self.eligible is None else bool(self.eligible(record))


_NOTHING = object()


def _near(module: Any, attribute: str, found: object = _NOTHING) -> str | None:
    """ "did you mean NAME?" for a misspelled attribute: the closest Migration of the module,
    else the closest public name (not the wrong one ``found``); None when nothing is close."""
    names = [
        name
        for name in vars(module)
        if not name.startswith("_") and name != attribute and getattr(module, name) is not found
    ]
    migrations = [name for name in names if isinstance(getattr(module, name), Migration)]
    for candidates in (migrations, names):
        near = difflib.get_close_matches(attribute, candidates, n=1, cutoff=0.6)
        if near:
            return f"did you mean {near[0]}?"
    if len(migrations) == 1:
        return f"its Migration is {migrations[0]}"
    return None


def load_migration(spec: str, *, cwd: str | Path | None = None) -> Migration[Any]:
    """Import ``module:attribute`` (the current directory importable) and check it."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(
            f"migration.plugin {spec!r} is not of the form module:attribute",
            hint='e.g. "northmigrate.examples.onboarding:migration"',
        )
    directory = str(Path(cwd) if cwd else Path.cwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code
        detail = f"{type(exc).__name__}: {exc}"
        raise PluginError(f"cannot import plugin module {module_name!r}: {detail}") from exc
    try:
        value = getattr(module, attribute)
    except AttributeError as exc:
        raise PluginError(
            f"plugin module {module_name!r} has no attribute {attribute!r}",
            hint=_near(module, attribute),
        ) from exc
    if not isinstance(value, Migration):
        raise PluginError(
            f"{spec} is a {type(value).__name__}, not a northmigrate.Migration",
            hint=_near(module, attribute, value),
        )
    return value
