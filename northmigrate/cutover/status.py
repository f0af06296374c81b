"""``cutover status``: held or not, by whom and why, the backlog against the retention
period, and each mapping of the queue with its state.

The oldest message's age comes from CloudWatch (``ApproximateAgeOfOldestMessage``, best
effort: None where it cannot be read). A warning is raised well before messages would
expire: once the oldest has waited half of the retention period. Another warns when more
than one mapping is enabled (two consumers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from northmigrate.aws.sqs.queue import Depth
from northmigrate.cutover.record import Record, read_record
from northmigrate.cutover.target import QueueMapping, Target

WARN_FRACTION = 0.5  # warn once the oldest message has waited this share of the retention
DEFAULT_RETENTION_S = 345_600


@dataclass
class CutoverStatus:
    queue: str
    record: Record
    depth: Depth
    retention_s: int
    oldest_age_s: float | None
    mappings: list[QueueMapping] = field(default_factory=list)

    @property
    def expires_in_s(self) -> int | None:
        if self.oldest_age_s is None:
            return None
        return max(0, int(self.retention_s - self.oldest_age_s))

    @property
    def warnings(self) -> list[str]:
        out = []
        age, left = self.oldest_age_s, self.expires_in_s
        if age is not None and left is not None and age >= WARN_FRACTION * self.retention_s:
            out.append(
                f"the oldest message has waited {age:.0f} s of the queue's {self.retention_s} s "
                f"retention: it expires in {left} s; switch or roll back before"
            )
        enabled = [m for m in self.mappings if m.enabled]
        if len(enabled) > 1:
            names = ", ".join(m.function for m in enabled)
            out.append(f"{len(enabled)} mappings are enabled ({names}): two consumers")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "held": self.record.held,
            **self.record.to_dict(),
            "depth": self.depth.total,
            "visible": self.depth.visible,
            "in_flight": self.depth.in_flight,
            "delayed": self.depth.delayed,
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s),
            "retention_s": self.retention_s,
            "expires_in_s": self.expires_in_s,
            "warnings": self.warnings,
            "mappings": [m.to_dict() for m in self.mappings],
        }


def status(target: Target, oldest_age_s: float | None = None) -> CutoverStatus:
    """The cutover's state of ``target`` (its attributes read afresh)."""
    target.attributes(fresh=True)
    return CutoverStatus(
        queue=target.name,
        record=read_record(target.sqs, target.url),
        depth=target.depth(),
        retention_s=target.int_attribute("MessageRetentionPeriod", DEFAULT_RETENTION_S),
        oldest_age_s=oldest_age_s,
        mappings=target.mappings(),
    )
