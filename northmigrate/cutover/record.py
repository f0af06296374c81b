"""The cutover's record: what a hold or a switch left on the queue, as the queue's tags.

The record lives where the tap's does, on the queue itself, so whoever looks next (another
operator, another machine, a rerun after an interruption) reads it without any other
infrastructure:

- ``northmigrate:cutover``: ``held`` (no mapping reads the queue; messages wait) or
  ``switched`` (the new function's mapping reads it; the old ones are kept, disabled);
  no tag means no cutover is under way.
- ``northmigrate:cutover-by``, ``-at``, ``-reason``: who held or switched it, when and why.
- ``northmigrate:cutover-from``: the UUIDs of the old mappings the hold disabled (what
  ``rollback`` enables again and ``finish`` deletes), space-separated.
- ``northmigrate:cutover-to``: the new function, once a switch has begun.

A tag's value holds at most 256 characters: six mapping UUIDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate.aws import aws_errors
from northmigrate.aws.sqs.message import sqs_text
from northmigrate.consume.tap import (
    CUTOVER_FROM_TAG,
    CUTOVER_HELD,
    CUTOVER_TAG,
    TAG_VALUE_LIMIT,
    read_tags,
)
from northmigrate.errors import InputError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

TAG_STATE = CUTOVER_TAG  # the tap reads it too: it never enables a held queue's consumers
TAG_BY = "northmigrate:cutover-by"
TAG_AT = "northmigrate:cutover-at"
TAG_REASON = "northmigrate:cutover-reason"
TAG_FROM = CUTOVER_FROM_TAG
TAG_TO = "northmigrate:cutover-to"
ALL_TAGS = [TAG_STATE, TAG_BY, TAG_AT, TAG_REASON, TAG_FROM, TAG_TO]
HELD = CUTOVER_HELD
SWITCHED = "switched"
UUID_LENGTH = 36
MAX_OLD_MAPPINGS = TAG_VALUE_LIMIT // (UUID_LENGTH + 1)


@dataclass(frozen=True)
class Record:
    """The cutover's state on one queue; ``state`` None means no cutover is under way."""

    state: str | None = None
    by: str | None = None
    at: str | None = None
    reason: str | None = None
    old: tuple[str, ...] = field(default_factory=tuple)  # the old mappings' UUIDs
    to: str | None = None  # the new function

    @property
    def held(self) -> bool:
        return self.state == HELD

    @property
    def switched(self) -> bool:
        return self.state == SWITCHED

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Record:
        state = tags.get(TAG_STATE) or None
        if state not in {HELD, SWITCHED}:
            return cls()
        return cls(
            state=state,
            by=tags.get(TAG_BY) or None,
            at=tags.get(TAG_AT) or None,
            reason=tags.get(TAG_REASON) or None,
            old=tuple(tags.get(TAG_FROM, "").split()),
            to=tags.get(TAG_TO) or None,
        )

    def to_tags(self) -> dict[str, str]:
        if len(self.old) > MAX_OLD_MAPPINGS:
            raise InputError(
                f"the queue has {len(self.old)} mappings to hold; a cutover records at most "
                f"{MAX_OLD_MAPPINGS}",
                hint="delete the mappings that are not needed any more first",
            )
        tags = {
            TAG_STATE: self.state or "",
            TAG_BY: self.by or "",
            TAG_AT: self.at or "",
            TAG_REASON: self.reason or "",
            TAG_FROM: " ".join(self.old),
            TAG_TO: self.to or "",
        }
        return {k: sqs_text(v)[:TAG_VALUE_LIMIT] for k, v in tags.items() if v}

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "by": self.by,
            "at": self.at,
            "reason": self.reason,
            "from": list(self.old),
            "to": self.to,
        }


def read_record(sqs: SQSClient, url: str) -> Record:
    return Record.from_tags(read_tags(sqs, url))


def write_record(sqs: SQSClient, url: str, record: Record) -> None:
    """Replace the queue's record with ``record`` (tags it does not set are removed)."""
    tags = record.to_tags()
    name = url.rsplit("/", 1)[-1]
    with aws_errors(f"tag queue {name}"):
        sqs.tag_queue(QueueUrl=url, Tags=tags)
        stale = [key for key in ALL_TAGS if key not in tags]
        if stale:
            sqs.untag_queue(QueueUrl=url, TagKeys=stale)


def clear_record(sqs: SQSClient, url: str) -> None:
    with aws_errors(f"untag queue {url.rsplit('/', 1)[-1]}"):
        sqs.untag_queue(QueueUrl=url, TagKeys=ALL_TAGS)
