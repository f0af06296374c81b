"""``dlq redrive --canary N``: move a few dead letters first, see them through, then the rest.

1. The canary: up to N dead letters that match the filters are moved, as any redrive moves.
2. The wait, at most ``wait_s``: a canary is *migrated* once the migration's ``verify`` (or
   ``verify_batch``) finds its record in the target; it is *back* once a dead letter of it
   arrives in the DLQ (its envelope's last ``redrives`` entry names this canary's run). The
   DLQ is read (a peek: nothing consumed) only when its depth changed since the last read.
   The wait ends when every canary is migrated or back, or when the time is up.
3. The verdict: passed when every canary is migrated. Then, and only then, the rest moves
   (``--max`` less the canaries). A canary back in the DLQ, or still undecided when the time
   is up, fails it: nothing more is moved, and the command exits 1.

A canary needs ``verify``: nothing else can tell a migrated record from one that waits in the
main queue (the tap closed, no worker running) without reading the main queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate import records
from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.queue import depth
from northmigrate.aws.sqs.reader import peek
from northmigrate.consume.presence import Readers
from northmigrate.control.reconcile import verify_records
from northmigrate.dlq.letters import Letter, read_letter
from northmigrate.dlq.redrive import redrive
from northmigrate.dlq.report import RedriveReport
from northmigrate.errors import InputError, NorthmigrateError
from northmigrate.plugin import Migration, MigrationContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

WAITING, MIGRATED, BACK = "waiting", "migrated", "back"
POLL_S = 5.0
CANARY_WAIT_S = 300.0


@dataclass
class Canary:
    """One canary letter and what became of it."""

    record_id: str | None
    message_id: str
    record: dict[str, Any] | None
    state: str = WAITING
    reason: str | None = None  # back: the dead letter's reason; waiting: why unverified

    def to_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "state": self.state, "reason": self.reason}


@dataclass
class CanaryReport:
    requested: int
    wait_s: float
    moved: RedriveReport
    canaries: list[Canary] = field(default_factory=list)
    waited_s: float = 0.0
    rest: RedriveReport | None = None
    interrupted: bool = False

    def count(self, state: str) -> int:
        return sum(1 for c in self.canaries if c.state == state)

    @property
    def passed(self) -> bool:
        return bool(self.canaries) and self.count(MIGRATED) == len(self.canaries)

    def summary(self) -> str:
        if not self.canaries:
            return "no dead letter matched: no canary"
        text = (
            f"canary of {len(self.canaries)}: {self.count(MIGRATED)} migrated, "
            f"{self.count(BACK)} back in the DLQ, {self.count(WAITING)} undecided "
            f"after {self.waited_s:.0f} s"
        )
        return text + (": passed" if self.passed else ": failed, nothing more moved")

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "wait_s": self.wait_s,
            "waited_s": round(self.waited_s, 1),
            "moved": len(self.canaries),
            "migrated": self.count(MIGRATED),
            "back": self.count(BACK),
            "waiting": self.count(WAITING),
            "passed": self.passed,
            "records": [c.to_dict() for c in self.canaries],
            "interrupted": self.interrupted,
        }


class _Watch:
    """Decides the canaries: verify for the migrated, the DLQ for those back."""

    def __init__(
        self,
        sqs: SQSClient,
        dlq_url: str,
        migration: Migration[Any],
        ctx: MigrationContext,
        canaries: list[Canary],
        run_id: str,
    ) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.migration = migration
        self.ctx = ctx
        self.canaries = canaries
        self.run_id = run_id
        self._dlq_depth: int | None = None

    def check(self) -> None:
        self._back()
        self._verify()

    def _waiting(self) -> list[Canary]:
        return [c for c in self.canaries if c.state == WAITING]

    def _back(self) -> None:
        now = depth(self.sqs, self.dlq_url).total
        if now == self._dlq_depth:
            return
        self._dlq_depth = now
        by_record = {c.record_id: c for c in self._waiting() if c.record_id is not None}
        for chunk in peek(self.sqs, self.dlq_url):
            for message in chunk:
                letter = read_letter(message)
                ours = self._ours(letter) and letter.record_id is not None
                canary = by_record.get(letter.record_id or "") if ours else None
                if canary is not None and canary.state == WAITING:
                    canary.state, canary.reason = BACK, letter.reason

    def _ours(self, letter: Letter) -> bool:
        redrives = letter.data.get("redrives") if letter.is_envelope else None
        if not isinstance(redrives, list) or not redrives or not isinstance(redrives[-1], dict):
            return False
        return bool(redrives[-1].get("run") == self.run_id)

    def _verify(self) -> None:
        pending: list[tuple[Canary, Any]] = []
        for canary in self._waiting():
            if canary.record is None:
                canary.reason = "not a record northmigrate can verify"
                continue
            try:
                pending.append((canary, records.build(self.migration.model, canary.record)))
            except Exception as exc:  # it does not validate: it can only come back
                canary.reason = f"the record does not validate ({type(exc).__name__})"
        if not pending:
            return
        verdicts = verify_records(self.migration, self.ctx, [model for _, model in pending])
        for (canary, _), verdict in zip(pending, verdicts, strict=True):
            if verdict is True:
                canary.state, canary.reason = MIGRATED, None
            elif isinstance(verdict, str):
                canary.reason = f"verify failed: {verdict}"


def canary_redrive(
    sqs: SQSClient,
    source_url: str,
    destination_url: str,
    *,
    migration: Migration[Any],
    clients: AwsClients,
    options: dict[str, Any],
    size: int,
    wait_s: float,
    redrive_kwargs: dict[str, Any],
    max_messages: int | None = None,
    stop: threading.Event | None = None,
    poll_s: float = POLL_S,
    monotonic: Callable[[], float] = time.monotonic,
    run_id: str = "",
    on_wait: Callable[[dict[str, Any]], None] | None = None,
    readers: Callable[[], Readers] | None = None,
) -> CanaryReport:
    """Move ``size`` canaries, wait for their verdict, and move the rest when it passed.
    ``on_wait`` hears once what the wait is for, with a warning at once when ``readers``
    finds nothing that reads the main queue (no worker seen, no enabled mapping)."""
    if migration.verify is None and migration.verify_batch is None:
        raise InputError(
            f"--canary needs migration {migration.name}'s verify to tell a migrated record",
            hint="add verify=(record, ctx) -> bool to the Migration, or redrive without --canary",
        )
    if max_messages is not None and max_messages < size:
        raise InputError(f"--max {max_messages} is smaller than the canary ({size})")
    stop = stop or threading.Event()
    canaries: list[Canary] = []
    lock = threading.Lock()

    def moved(letters: list[Letter]) -> None:
        with lock:
            canaries.extend(
                Canary(letter.record_id, letter.message.message_id, letter.record)
                for letter in letters
            )

    run = run_id or f"canary-{int(time.time())}"
    first = redrive(
        sqs,
        source_url,
        destination_url,
        max_messages=size,
        stop=stop,
        on_moved=moved,
        run_id=run,
        **redrive_kwargs,
    )
    report = CanaryReport(size, wait_s, first, canaries)
    if first.error is not None or first.interrupted or not canaries:
        report.interrupted = first.interrupted
        return report
    watch = _Watch(
        sqs,
        source_url,
        migration,
        MigrationContext(options=options, aws=clients),
        canaries,
        run,
    )
    if on_wait is not None:
        on_wait(_waiting(len(canaries), wait_s, readers))
    started = monotonic()
    while True:
        watch.check()
        report.waited_s = monotonic() - started
        if not any(c.state == WAITING for c in canaries) or report.waited_s >= wait_s:
            break
        if stop.wait(min(poll_s, max(0.0, wait_s - report.waited_s))):
            report.interrupted = True
            return report
    if report.passed:
        rest = None if max_messages is None else max_messages - len(canaries)
        if rest is None or rest > 0:
            report.rest = redrive(
                sqs,
                source_url,
                destination_url,
                max_messages=rest,
                stop=stop,
                **redrive_kwargs,
            )
    return report


def _waiting(count: int, wait_s: float, readers: Callable[[], Readers] | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "waiting",
        "for": f"a consumer to migrate the canary ({count} records)",
        "wait_s": wait_s,
    }
    if readers is not None:
        try:
            found = readers()
        except NorthmigrateError as exc:  # unknown: wait all the same
            event["readers"] = f"unknown ({exc})"
        else:
            event["readers"] = found.to_dict()
            if not found.any:
                event["warning"] = f"nothing reads the main queue: {found.why_none()}"
    return event
