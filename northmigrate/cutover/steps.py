"""The steps of a cutover: hold, switch, rollback, finish. Each is idempotent: run again
after an interruption, it finishes what is left and changes nothing that is done.

The invariant: never two enabled mappings on the queue at any instant (two consumers would
split the traffic between two services). So a step disables first and waits until AWS says
``Disabled``, and only then enables; before enabling it lists the queue's mappings again and
refuses if any other is not ``Disabled``. The record (:mod:`northmigrate.cutover.record`) is
written before the mappings change, so an interrupted step leaves a record that says what
was under way; a switch that fails after it enabled the new mapping disables it again (the
queue is held) and says how to continue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from northmigrate.aws import aws_errors, error_code
from northmigrate.cutover.canary import CanaryResult
from northmigrate.cutover.record import HELD, Record, read_record, write_record
from northmigrate.cutover.record import clear_record as _clear
from northmigrate.cutover.target import DISABLED, QueueMapping, Target
from northmigrate.errors import NorthmigrateError, Refused

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_iam import IAMClient

DEFAULT_BATCH_SIZE = 10


@dataclass
class StepReport:
    queue: str
    step: str
    changed: bool
    message: str
    record: Record
    mappings: list[QueueMapping] = field(default_factory=list)
    canary: CanaryResult | None = None

    @property
    def ok(self) -> bool:
        return self.canary is None or self.canary.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "step": self.step,
            "ok": self.ok,
            "changed": self.changed,
            "message": self.message,
            "held": self.record.held,
            **self.record.to_dict(),
            "mappings": [m.to_dict() for m in self.mappings],
            "canary": None if self.canary is None else self.canary.to_dict(),
        }


class Steps:
    """The steps of the cutover of one queue (``target``) but the switch (``Cutover``
    adds it); ``by`` names who runs them."""

    def __init__(
        self,
        target: Target,
        *,
        by: str = "operator",
        cloudwatch: CloudWatchClient | None = None,
        iam: IAMClient | None = None,
        kms: Any = None,
        now: Callable[[], str] = lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.by = by
        self.cloudwatch = cloudwatch
        self.iam = iam
        self.kms = kms
        self.now = now
        self.sleep = sleep

    def record(self) -> Record:
        return read_record(self.target.sqs, self.target.url)

    def _write(self, record: Record) -> Record:
        write_record(self.target.sqs, self.target.url, record)
        return record

    def _report(self, step: str, changed: bool, message: str, record: Record) -> StepReport:
        return StepReport(self.target.name, step, changed, message, record, self.target.mappings())

    def _stamp(self, record: Record, state: str, reason: str | None) -> Record:
        return replace(record, state=state, by=self.by, at=self.now(), reason=reason)

    @contextmanager
    def _continuing(self, step: str, state: str) -> Iterator[None]:
        """A failure inside: the same error, saying what state the queue is in and that the
        same step, run again, continues."""
        try:
            yield
        except NorthmigrateError as exc:
            q = self.target.name
            raise type(exc)(
                f"{exc.message}; {q} {state}",
                hint=f"cutover {step} --queue {q} again continues; cutover status --queue {q} "
                "shows each mapping",
            ) from exc

    # -- hold -------------------------------------------------------------------------------
    def hold(self, reason: str | None = None) -> StepReport:
        """Disable every enabled mapping of the queue; messages wait in it."""
        record = self.record()
        enabled = [m for m in self.target.mappings() if m.enabled]
        if record.held and not enabled:
            return self._report("hold", False, f"{self.target.name} is held already", record)
        new_old = [m.uuid for m in enabled if m.function != record.to and m.uuid not in record.old]
        record = self._write(
            self._stamp(replace(record, old=record.old + tuple(new_old)), HELD, reason)
        )
        with self._continuing("hold", "is held, but a mapping may still be enabled"):
            for mapping in enabled:
                self.target.set_enabled(mapping.uuid, False)
        names = ", ".join(sorted({m.function for m in enabled})) or "no consumer was enabled"
        return self._report("hold", True, f"{self.target.name} is held ({names})", record)

    def _alone(self, to: str) -> list[QueueMapping]:
        """The queue's mappings, once every mapping of another function is Disabled; Refused
        when one is not (the new one must never read beside another consumer)."""
        found = self.target.mappings()
        for mapping in found:
            if mapping.function != to and mapping.state.state != DISABLED:
                settled = self.target.settle(mapping.uuid)
                if settled.state.state != DISABLED:
                    raise Refused(
                        f"mapping {mapping.uuid} of {mapping.function} is {settled.state.state}: "
                        f"{to} would read the queue beside it",
                        hint=f"cutover hold --queue {self.target.name} first",
                    )
        return found

    def _rehold(self, uuid: str, record: Record, reason: str) -> Record:
        """Disable the new mapping again: the queue is held, with ``reason``."""
        try:
            self.target.set_enabled(uuid, False)
        except NorthmigrateError as exc:
            raise type(exc)(
                f"{exc.message}; the new mapping {uuid} may still be enabled",
                hint=f"cutover hold --queue {self.target.name}",
            ) from exc
        return self._write(self._stamp(record, HELD, reason))

    # -- rollback and finish --------------------------------------------------------------
    def rollback(self) -> StepReport:
        """Disable the new mapping, then enable the old one again; the record goes."""
        record = self.record()
        if record.state is None:
            message = f"no cutover under way on {self.target.name}: nothing to roll back"
            return self._report("rollback", False, message, record)
        found = {m.uuid: m for m in self.target.mappings()}
        old = [found[uuid] for uuid in record.old if uuid in found]
        if len(old) > 1:
            raise Refused(
                f"the hold disabled {len(old)} mappings ({', '.join(m.uuid for m in old)}): "
                "enabling them all would make several consumers",
                hint="delete the ones not needed (aws lambda delete-event-source-mapping), "
                "then roll back again",
            )
        if record.old and not old:
            raise Refused(
                f"the old mapping of {self.target.name} no longer exists: nothing to roll back to"
            )
        record = self._write(self._stamp(record, HELD, "rolling back"))
        with self._continuing("rollback", "is held, half rolled back"):
            for mapping in found.values():
                if mapping.enabled and mapping.uuid not in record.old:
                    self.target.set_enabled(mapping.uuid, False)
            for mapping in old:
                self._alone(mapping.function)
                self.target.set_enabled(mapping.uuid, True)
            _clear(self.target.sqs, self.target.url)
        back = ", ".join(m.function for m in old) or "no consumer (none was enabled before)"
        return self._report("rollback", True, f"{self.target.name} reads into {back}", Record())

    def finish(self) -> StepReport:
        """Delete the old mappings once the new one reads the queue; the record goes."""
        record = self.record()
        if record.state is None:
            message = f"no cutover under way on {self.target.name}: nothing to finish"
            return self._report("finish", False, message, record)
        if not record.switched:
            raise Refused(
                f"queue {self.target.name} is held, not switched: finishing would leave it "
                "without a consumer to go back to",
                hint=f"cutover switch --queue {self.target.name} --to FUNCTION first",
            )
        mine = [m for m in self.target.mappings() if m.function == record.to and m.enabled]
        if not mine:
            raise Refused(
                f"the mapping of {record.to} on {self.target.name} is not enabled",
                hint=f"cutover switch --queue {self.target.name} --to {record.to} first",
            )
        with self._continuing("finish", f"is read by {record.to}; the old mapping may remain"):
            for uuid in record.old:
                self._delete(uuid)
            _clear(self.target.sqs, self.target.url)
        message = f"{self.target.name} is read by {record.to}; the old mapping is deleted"
        return self._report("finish", True, message, Record())

    def _delete(self, uuid: str) -> None:
        try:
            self.target.settle(uuid)
            self.target.lam.delete_event_source_mapping(UUID=uuid)
        except NorthmigrateError as exc:
            if error_code(exc.__cause__ or exc) != "ResourceNotFoundException":
                raise
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                with aws_errors(f"delete event source mapping {uuid}"):
                    raise
