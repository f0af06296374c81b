"""``cutover plan``: what a safe switch of a queue to a new function needs, checked.

Each check has a name, a verdict (``ok`` true or false, or None when it could not be read)
and a line that says what was found. Nothing is changed. ``switch`` runs the checks that
concern the new consumer (:data:`CONSUMER_CHECKS`) and refuses when one fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate.aws import AWS_EXCEPTIONS
from northmigrate.cutover.access import AWS_MANAGED_SQS_KEY, consumer_wanted, role_missing
from northmigrate.cutover.record import Record
from northmigrate.cutover.target import Function, QueueMapping, Target

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

VISIBILITY_FACTOR = 6  # AWS's advice: the queue's visibility timeout >= 6 x the function's
DEFAULT_HOLD_S = 3600
CONSUMER_CHECKS = ("dead_letter_queue", "visibility_timeout", "batch_item_failures", "role")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: could not be read (not a failure, but not a pass either)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Plan:
    queue: str
    to: str
    old: list[str]  # the functions whose mappings the hold disables (or disabled)
    room_s: int | None  # how long the backlog can wait before its oldest message expires
    checks: list[Check] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "to": self.to,
            "from": self.old,
            "room_s": self.room_s,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "steps": self.steps,
        }


def _duration(seconds: int) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds} s"


def consumers(
    found: list[QueueMapping], to: str, old: str | None, record: Record
) -> tuple[Check, list[QueueMapping]]:
    """Exactly one consumer enabled today (the old one, ``old`` when named); or a hold."""
    others = [m for m in found if m.function != to]
    enabled = [m for m in others if m.enabled]
    names = ", ".join(sorted({m.function for m in enabled}))
    if len(enabled) > 1:
        detail = f"{len(enabled)} mappings are enabled ({names}): two consumers already"
        return Check("one_consumer", False, detail), enabled
    if enabled and old and enabled[0].function != old:
        detail = f"the enabled consumer is {names}, not {old}"
        return Check("one_consumer", False, detail), enabled
    if enabled:
        return Check("one_consumer", True, f"one consumer enabled: {names}"), enabled
    if record.held:
        held = [m for m in others if m.uuid in record.old]
        return Check("one_consumer", True, f"held by {record.by}: no consumer enabled"), held
    new = [m for m in found if m.function == to and m.enabled]
    if new:
        return Check("one_consumer", False, f"{to} reads the queue already"), []
    return Check("one_consumer", False, "no consumer is enabled: nothing to switch from"), []


def retention(target: Target, oldest_age_s: float | None, hold_s: int) -> tuple[Check, int]:
    retention_s = target.int_attribute("MessageRetentionPeriod", 345_600)
    room = retention_s - int(oldest_age_s or 0)
    detail = (
        f"retention {_duration(retention_s)}: the backlog can wait {_duration(room)} "
        f"(the hold is planned for {_duration(hold_s)}; --hold-for)"
    )
    if oldest_age_s is None:
        detail += "; the oldest message's age is unknown (no CloudWatch figure): counted as 0"
    return Check("retention", room >= hold_s, detail), room


def dead_letter_queue(target: Target) -> Check:
    url = target.dlq_url()
    if url is None:
        return Check("dead_letter_queue", False, "no redrive policy: a poison message loops")
    return Check("dead_letter_queue", True, f"dead letters go to {url.rsplit('/', 1)[-1]}")


def visibility(target: Target, function: Function) -> Check:
    have = target.int_attribute("VisibilityTimeout", 30)
    needed = VISIBILITY_FACTOR * function.timeout_s
    detail = (
        f"visibility timeout {have} s, {VISIBILITY_FACTOR} x the timeout of {function.name} "
        f"({function.timeout_s} s) is {needed} s"
    )
    return Check("visibility_timeout", have >= needed, detail)


def item_failures(found: list[QueueMapping], to: str) -> Check:
    mine = [m for m in found if m.function == to]
    if not mine:
        return Check("batch_item_failures", True, "the new mapping is created reporting them")
    if len(mine) > 1:
        return Check("batch_item_failures", False, f"{to} has {len(mine)} mappings on the queue")
    if mine[0].reports_item_failures:
        return Check("batch_item_failures", True, f"mapping {mine[0].uuid} reports them")
    detail = (
        f"mapping {mine[0].uuid} of {to} does not report batch item failures "
        "(one failed record would retry its whole batch): delete it, or set "
        "FunctionResponseTypes=ReportBatchItemFailures"
    )
    return Check("batch_item_failures", False, detail)


def _kms_key(target: Target, kms: Any) -> tuple[str | None, bool]:
    """The queue's KMS key ARN (None: no customer key), and whether it could be read."""
    key = target.attributes().get("KmsMasterKeyId")
    if not key or key == AWS_MANAGED_SQS_KEY:
        return None, True
    if key.startswith("arn:") and ":key/" in key:
        return key, True
    if kms is None:
        return None, False
    try:
        return str(kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]), True
    except AWS_EXCEPTIONS:
        return None, False


def role(target: Target, function: Function, iam: IAMClient, kms: Any) -> Check:
    key, known = _kms_key(target, kms)
    missing = role_missing(iam, function.role_arn, consumer_wanted(target.arn, key))
    role_name = function.role_arn.rsplit("/", 1)[-1]
    if missing is None or not known:
        return Check("role", None, f"could not read the policies of role {role_name}")
    if missing:
        return Check("role", False, f"role {role_name} is not granted {', '.join(missing)}")
    kms_text = " and its KMS key" if key else ""
    return Check("role", True, f"role {role_name} may consume the queue{kms_text}")


def plan(
    target: Target,
    to: str,
    iam: IAMClient,
    *,
    old: str | None = None,
    record: Record | None = None,
    kms: Any = None,
    hold_s: int = DEFAULT_HOLD_S,
    oldest_age: Callable[[], float | None] = lambda: None,
) -> Plan:
    """Every check of a switch of ``target`` to ``to``; changes nothing."""
    function = target.function(to)  # a missing function: AwsError before any check
    if old is not None:
        target.function(old, "--from")
    record = record or Record()
    found = target.mappings()
    one, old_mappings = consumers(found, function.name, old, record)
    keep, room = retention(target, oldest_age(), hold_s)
    checks = [
        one,
        keep,
        dead_letter_queue(target),
        visibility(target, function),
        item_failures(found, function.name),
        role(target, function, iam, kms),
    ]
    names = sorted({m.function for m in old_mappings})
    result = Plan(target.name, function.name, names, room, checks)
    result.steps = steps(target.name, function.name, names)
    return result


def steps(queue: str, to: str, old: list[str]) -> list[str]:
    was = ", ".join(old) or "the old consumer"
    return [
        f"hold: disable the mapping of {was} on {queue}, wait until it is Disabled "
        f"(messages wait in the queue): cutover hold --queue {queue}",
        "migrate the old records while the queue is held (northmigrate enqueue, worker or "
        f"deploy), watching the backlog: cutover status --queue {queue}",
        f"switch: create (or enable) the mapping of {to}, reporting batch item failures, "
        f"after every other mapping is Disabled: cutover switch --queue {queue} --to {to} "
        "--canary 1",
        f"if anything is wrong: cutover rollback --queue {queue} (disables {to}, enables {was})",
        f"once {to} has run: cutover finish --queue {queue} (deletes the mapping of {was})",
    ]
