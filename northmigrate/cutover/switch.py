"""The switch of a held queue to a new function (the cutover's one step that enables a
new consumer), with its canary. See :mod:`northmigrate.cutover.steps` for the invariant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from northmigrate.aws import aws_errors
from northmigrate.cutover import checks
from northmigrate.cutover.canary import CANARY_CONCURRENCY, Canary, CanaryResult
from northmigrate.cutover.record import SWITCHED
from northmigrate.cutover.steps import DEFAULT_BATCH_SIZE, StepReport, Steps
from northmigrate.cutover.target import DISABLED, Function, QueueMapping
from northmigrate.errors import NorthmigrateError, Refused


@dataclass
class SwitchOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrency: int | None = None  # None: no cap once open
    canary: int | None = None  # the canary's batch size; None: no canary
    canary_wait_s: float = 60.0


class Cutover(Steps):
    """Every step of the cutover of one queue: hold, switch, rollback, finish."""

    # -- switch -----------------------------------------------------------------------------
    def _refuse_checks(self, function: Function, found: list[QueueMapping]) -> None:
        to = function.name
        found_checks = [
            checks.dead_letter_queue(self.target),
            checks.visibility(self.target, function),
            checks.item_failures(found, function.name),
        ]
        if self.iam is not None:
            found_checks.append(checks.role(self.target, function, self.iam, self.kms))
        failed = [c for c in found_checks if c.ok is False]
        if failed:
            raise Refused(
                f"switch of {self.target.name} to {to} refused: "
                + "; ".join(f"{c.name}: {c.detail}" for c in failed),
                hint=f"cutover plan --queue {self.target.name} --to {to} shows every check",
            )

    def _new_mapping(self, to: str, found: list[QueueMapping], opts: SwitchOptions) -> str:
        mine = [m for m in found if m.function == to]
        if mine:
            return mine[0].uuid
        kwargs: dict[str, Any] = {"ScalingConfig": {"MaximumConcurrency": opts.max_concurrency}}
        with aws_errors(f"create the mapping of {to} on {self.target.name}"):
            created = self.target.lam.create_event_source_mapping(
                EventSourceArn=self.target.arn,
                FunctionName=to,
                Enabled=False,
                BatchSize=opts.batch_size,
                FunctionResponseTypes=["ReportBatchItemFailures"],
                **(kwargs if opts.max_concurrency else {}),
            )
        uuid = str(created["UUID"])
        self.target.wait_state(uuid, DISABLED)
        return uuid

    def _open(self, uuid: str, to: str, batch: int, concurrency: int | None) -> None:
        self._alone(to)  # again, right before: nothing enabled another one meanwhile
        scaling = {"MaximumConcurrency": concurrency} if concurrency else {}
        self.target.set_enabled(uuid, True, BatchSize=batch, ScalingConfig=scaling)

    def switch(self, to: str, options: SwitchOptions | None = None) -> StepReport:
        """Feed the held queue to ``to``: its mapping (created disabled if there is none) is
        enabled once every other mapping is Disabled; with a canary, slowly first."""
        opts = options or SwitchOptions()
        function = self.target.function(to)
        name = function.name
        record = self.record()
        if record.state is None:
            raise Refused(
                f"queue {self.target.name} is not held",
                hint=f"cutover hold --queue {self.target.name} first",
            )
        if record.switched and record.to != name:
            raise Refused(
                f"queue {self.target.name} is switched to {record.to}, not {name}",
                hint=f"cutover rollback --queue {self.target.name} first",
            )
        found = self._alone(name)
        mine = [m for m in found if m.function == name]
        if record.switched and mine and mine[0].enabled:
            return self._report("switch", False, f"{self.target.name} reads into {name}", record)
        self._refuse_checks(function, found)
        record = self._write(replace(record, to=name))
        uuid = self._new_mapping(name, found, opts)
        result: CanaryResult | None = None
        try:
            if opts.canary:
                canary = Canary(
                    self.target.sqs,
                    self.target.lam,
                    self.cloudwatch,
                    name,
                    uuid,
                    self.target.dlq_url(),
                    sleep=self.sleep,
                    clock=self.target.clock,
                )
                canary.start()
                self._open(uuid, name, opts.canary, CANARY_CONCURRENCY)
                result = canary.watch(opts.canary_wait_s)
                if not result.ok:
                    record = self._rehold(uuid, record, f"canary of {name} failed: {result.reason}")
                    report = self._report("switch", True, record.reason or "", record)
                    report.canary = result
                    return report
            self._open(uuid, name, opts.batch_size, opts.max_concurrency)
        except BaseException as exc:
            self._rehold(uuid, record, f"switch to {name} interrupted")
            if isinstance(exc, NorthmigrateError):
                raise type(exc)(
                    f"{exc.message}; {self.target.name} is held again",
                    hint=f"cutover switch --queue {self.target.name} --to {name} continues, "
                    f"cutover rollback --queue {self.target.name} goes back",
                ) from exc
            raise
        record = self._write(self._stamp(record, SWITCHED, f"switched to {name}"))
        report = self._report("switch", True, f"{self.target.name} reads into {name}", record)
        report.canary = result
        return report
