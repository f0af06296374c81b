"""The tap: one switch that opens, closes or limits every consumer of the main queue.

The state lives on the main queue as tags, so every consumer can read it without any other
infrastructure: ``northmigrate:tap`` (``open`` or ``closed``; no tag means open) and
``northmigrate:tap-limit`` (a positive integer; no tag means no limit).

- Lambda: closing disables every event source mapping that reads the queue, opening enables
  them; a limit sets their ``ScalingConfig.MaximumConcurrency`` (AWS takes 2 to 1000), or,
  for a mapping in provisioned mode (``ProvisionedPollerConfig``, which AWS refuses beside a
  maximum concurrency), its ``MaximumPollers`` (2 to 10,000; the minimum lowered to it).
- Local workers read the tags through a ``TapGate`` (northmigrate.consume.worker.gate; cached for
  ``ttl`` seconds, 2 by default): while closed they stop receiving (messages in flight
  finish), and a limit caps the records they handle per second. ``deploy`` honours the
  tags too: it never reopens a closed tap or lifts a limit.

Messages simply wait in the queue while the tap is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AwsClients, aws_errors, error_code
from northmigrate.aws.queues import Queues
from northmigrate.aws.sqs.message import sqs_text
from northmigrate.consume.mapping import MAX_POLLERS, PROVISIONED
from northmigrate.consume.mapping import MappingState as MappingState  # where it was
from northmigrate.errors import AwsError, InputError, Refused
from northmigrate.records.envelope import iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import (
        EventSourceMappingConfigurationResponseTypeDef,
        EventSourceMappingConfigurationTypeDef,
    )
    from mypy_boto3_sqs import SQSClient

TAG_STATE = "northmigrate:tap"
TAG_LIMIT = "northmigrate:tap-limit"
# Who closed the tap, when and why (a tag value holds at most 256 characters).
TAG_BY = "northmigrate:tap-by"
TAG_AT = "northmigrate:tap-at"
TAG_REASON = "northmigrate:tap-reason"
# Who set the limit and why (the guard lowers it under throttling: ``was`` is the limit it
# started from, which it raises back to), and who last opened the tap (the guard's probe).
TAG_LIMIT_BY = "northmigrate:tap-limit-by"
TAG_LIMIT_REASON = "northmigrate:tap-limit-reason"
TAG_LIMIT_WAS = "northmigrate:tap-limit-was"
TAG_OPENED = "northmigrate:tap-opened"
_LIMIT_TAGS = [TAG_LIMIT, TAG_LIMIT_BY, TAG_LIMIT_REASON, TAG_LIMIT_WAS]
TAG_VALUE_LIMIT = 256
GUARD = "guard"  # ``closed_by`` of a tap the guard closed starts with this
OPEN = "open"
CLOSED = "closed"
MIN_MAPPING_CONCURRENCY = 2  # AWS's floor for ScalingConfig.MaximumConcurrency
MAX_MAPPING_CONCURRENCY = 1000
_SETTLED = {"Enabled", "Disabled"}
# The cutover's record on a queue (northmigrate.cutover.record writes it): while it says
# ``held`` no consumer may be enabled; the mappings in ``-from`` (the old consumer's) stay
# disabled whatever the tap does, so that opening it never makes a second consumer.
CUTOVER_TAG = "northmigrate:cutover"
CUTOVER_FROM_TAG = "northmigrate:cutover-from"
CUTOVER_HELD = "held"
_GONE = {"ResourceNotFoundException"}


@dataclass(frozen=True)
class TapState:
    open: bool = True
    limit: int | None = None
    closed_by: str | None = None  # "operator", or "guard (worker host:pid)", …
    closed_at: str | None = None
    reason: str | None = None
    limit_by: str | None = None  # "operator", or "guard (…)" under throttling
    limit_reason: str | None = None
    limit_was: int | None = None  # the limit the guard lowered from (None: no limit)
    opened: str | None = None  # who last opened it, when (the guard's probe says so)
    cutover: str | None = None  # a cutover under way: "held" or "switched"
    cutover_old: tuple[str, ...] = ()  # the mappings it keeps disabled

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> TapState:
        limit = _positive(tags.get(TAG_LIMIT, ""))
        closed = tags.get(TAG_STATE, OPEN) == CLOSED
        cutover = tags.get(CUTOVER_TAG) or None
        old = tuple(tags.get(CUTOVER_FROM_TAG, "").split()) if cutover else ()
        return cls(
            open=not closed,
            limit=limit,
            closed_by=(tags.get(TAG_BY) or None) if closed else None,
            closed_at=(tags.get(TAG_AT) or None) if closed else None,
            reason=(tags.get(TAG_REASON) or None) if closed else None,
            limit_by=(tags.get(TAG_LIMIT_BY) or "operator") if limit else None,
            limit_reason=(tags.get(TAG_LIMIT_REASON) or None) if limit else None,
            limit_was=_positive(tags.get(TAG_LIMIT_WAS, "")) if limit else None,
            opened=tags.get(TAG_OPENED) or None,
            cutover=cutover,
            cutover_old=old,
        )

    @property
    def limited_by_guard(self) -> bool:
        return self.limit is not None and (self.limit_by or "").startswith(GUARD)

    @property
    def closed_by_guard(self) -> bool:
        return not self.open and (self.closed_by or "").startswith(GUARD)

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "limit": self.limit,
            "closed_by": self.closed_by,
            "closed_at": self.closed_at,
            "reason": self.reason,
            "limit_by": self.limit_by,
            "limit_reason": self.limit_reason,
            "limit_was": self.limit_was,
            "opened": self.opened,
        }


def _positive(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) > 0 else None


def closed_tags(by: str, reason: str | None, at: str) -> dict[str, str]:
    """The tags of a closed tap (each value within SQS's 256 characters)."""
    tags = {TAG_STATE: CLOSED, TAG_BY: by, TAG_AT: at}
    if reason:
        tags[TAG_REASON] = reason
    return {k: sqs_text(v)[:TAG_VALUE_LIMIT] for k, v in tags.items()}


@dataclass
class TapReport:
    queue: str
    state: TapState
    mappings: list[MappingState] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "tap": OPEN if self.state.open else CLOSED,
            **self.state.to_dict(),
            "mappings": [m.to_dict() for m in self.mappings],
        }


def read_tags(sqs: SQSClient, queue_url: str) -> dict[str, str]:
    with aws_errors(f"tags of queue {queue_url.rsplit('/', 1)[-1]}"):
        return dict(sqs.list_queue_tags(QueueUrl=queue_url).get("Tags") or {})


def read_state(sqs: SQSClient, queue_url: str) -> TapState:
    return TapState.from_tags(read_tags(sqs, queue_url))


def mappings(
    lam: LambdaClient, queue_arn: str, function_name: str | None = None
) -> list[EventSourceMappingConfigurationTypeDef]:
    """Every event source mapping reading the queue (of one function when named)."""
    kwargs: dict[str, Any] = {"EventSourceArn": queue_arn}
    if function_name:
        kwargs["FunctionName"] = function_name
    pages = lam.get_paginator("list_event_source_mappings").paginate(**kwargs)
    with aws_errors("list event source mappings"):
        return [mapping for page in pages for mapping in page.get("EventSourceMappings", [])]


def wait_mapping(
    lam: LambdaClient,
    uuid: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 120.0,
) -> EventSourceMappingConfigurationResponseTypeDef:
    """The mapping once it is Enabled or Disabled (an update in progress is refused by AWS)."""
    waited = 0.0
    while True:
        with aws_errors(f"event source mapping {uuid}"):
            data = lam.get_event_source_mapping(UUID=uuid)
        if data.get("State", "Enabled") in _SETTLED or waited >= timeout_s:
            return data
        sleep(1.0)
        waited += 1.0


class Tap:
    """Reads and sets the tap of one main queue (and of the mappings that read it)."""

    def __init__(
        self,
        clients: AwsClients,
        queues: Queues,
        *,
        default_limit: int | None = None,
        default_pollers: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        only: tuple[str, ...] | None = None,
        function: str | None = None,
    ) -> None:
        self.sqs = clients.client("sqs")
        self.clients = clients
        self.queues = queues
        self.default_limit = default_limit  # the mappings' concurrency with no tap limit
        self.default_pollers = default_pollers  # the same, in provisioned mode
        self.sleep = sleep
        # A function's own tap (the guard on Lambda): only its own mappings, by UUID, asked
        # one by one (its role may not list the others).
        self.only = only
        self.function = function  # only this function's mappings (listed)

    @property
    def _lambda(self) -> LambdaClient:
        return self.clients.client("lambda")

    def _mappings(self) -> list[Any]:
        """The mappings this tap switches ([] on an endpoint without Lambda)."""
        if self.only is not None:
            return [wait_mapping(self._lambda, uuid, sleep=self.sleep) for uuid in self.only]
        arn = self.queues.arn(self.queues.main_url())
        try:
            return list(mappings(self._lambda, arn, self.function))
        except AwsError as exc:
            if error_code(exc.__cause__ or exc) in {"UnknownOperationException", "NotFound"}:
                return []  # an endpoint without Lambda: local workers only
            raise

    def _mapping_states(self) -> list[MappingState]:
        return [MappingState.from_api(m) for m in self._mappings()]

    def state(self) -> TapState:
        return read_state(self.sqs, self.queues.main_url())

    def cap(self) -> int | None:
        """The highest limit its mappings run at now (maximum concurrency, or maximum pollers
        in provisioned mode): what the guard lowers from when the tap has no limit."""
        caps = [m.cap for m in self._mapping_states() if m.cap is not None]
        return max(caps) if caps else None

    def ceiling(self) -> int:
        """The highest limit the tap takes now (see ``_ceiling``)."""
        return _ceiling(self._mapping_states())

    def status(self) -> TapReport:
        url = self.queues.main_url()
        return TapReport(self.queues.main_name, read_state(self.sqs, url), self._mapping_states())

    def _tag(self, tags: dict[str, str]) -> None:
        with aws_errors(f"tag queue {self.queues.main_name}"):
            self.sqs.tag_queue(QueueUrl=self.queues.main_url(), Tags=tags)

    def _update_mappings(self, *, keep: tuple[str, ...] = (), **changes: Any) -> None:
        """Apply ``changes`` to every mapping of the queue but the ones in ``keep``."""
        for mapping in self._mappings():
            uuid = str(mapping["UUID"])
            if uuid in keep:
                continue
            wait_mapping(self._lambda, uuid, sleep=self.sleep)
            with aws_errors(f"update event source mapping {uuid}"):
                self._lambda.update_event_source_mapping(UUID=uuid, **changes)

    def close(self, *, by: str = "operator", reason: str | None = None) -> TapReport:
        """Local workers stop first (the tag), then Lambda (the mappings); the tags say who
        closed it, when and why."""
        self._tag(closed_tags(by, reason, iso(utc_now())))
        self._update_mappings(Enabled=False)
        return self.status()

    def open(self, *, by: str = "operator", note: str | None = None) -> TapReport:
        """Enable the mappings (but an old consumer a cutover keeps disabled), then the tag;
        ``by`` and ``note`` say who opened it (the guard's probe: how long it was closed).
        Refused while a cutover holds the queue."""
        state = read_state(self.sqs, self.queues.main_url())
        if state.cutover == CUTOVER_HELD:
            name = self.queues.main_name
            raise Refused(
                f"queue {name} is held by cutover: opening the tap would enable its consumers",
                hint=f"cutover switch --queue {name} --to FUNCTION, or cutover rollback "
                f"--queue {name}",
            )
        self._update_mappings(Enabled=True, keep=state.cutover_old)
        opened = f"{by} at {iso(utc_now())}" + (f": {note}" if note else "")
        self._tag({TAG_STATE: OPEN, TAG_OPENED: sqs_text(opened)[:TAG_VALUE_LIMIT]})
        self._untag([TAG_BY, TAG_AT, TAG_REASON])
        return self.status()

    def _untag(self, keys: list[str]) -> None:
        with aws_errors(f"untag queue {self.queues.main_name}"):
            self.sqs.untag_queue(QueueUrl=self.queues.main_url(), TagKeys=keys)

    def limit(
        self,
        n: int | None,
        *,
        by: str = "operator",
        reason: str | None = None,
        was: int | None = None,
    ) -> TapReport:
        """Cap consumption at ``n``; None lifts the cap (mappings go back to the config's
        maximum concurrency, or maximum pollers in provisioned mode). The guard passes
        ``by``, ``reason`` and ``was`` (the limit it lowered from)."""
        found = self._mapping_states()
        ceiling = _ceiling(found)
        if n is not None and not MIN_MAPPING_CONCURRENCY <= n <= ceiling:
            raise InputError(
                f"tap limit {n} is out of range",
                hint=f"give {MIN_MAPPING_CONCURRENCY} to {ceiling} (AWS's range for an event "
                f"source mapping's maximum concurrency, or up to {MAX_POLLERS} pollers when "
                "every mapping is in provisioned mode)",
            )
        if n is None:
            self._untag(_LIMIT_TAGS)
        else:
            tags = {TAG_LIMIT: str(n), TAG_LIMIT_BY: by}
            tags |= {TAG_LIMIT_REASON: reason} if reason else {}
            tags |= {TAG_LIMIT_WAS: str(was)} if was else {}
            self._tag({k: sqs_text(v)[:TAG_VALUE_LIMIT] for k, v in tags.items()})
            self._untag([key for key in _LIMIT_TAGS if key not in tags])
        for mapping in found:
            default = self.default_pollers if mapping.mode == PROVISIONED else self.default_limit
            changes = mapping.limited(n, default)
            if changes is not None:
                wait_mapping(self._lambda, mapping.uuid, sleep=self.sleep)
                with aws_errors(f"update event source mapping {mapping.uuid}"):
                    self._lambda.update_event_source_mapping(UUID=mapping.uuid, **changes)
        return self.status()


def _ceiling(found: list[MappingState]) -> int:
    """The highest limit the consumers take: ``MAX_POLLERS`` when every mapping is in
    provisioned mode, else ``MAX_MAPPING_CONCURRENCY`` (a mapping's, or a local worker's)."""
    provisioned = bool(found) and all(m.mode == PROVISIONED for m in found)
    return MAX_POLLERS if provisioned else MAX_MAPPING_CONCURRENCY
