"""The tap: one switch that opens, closes or limits every consumer of the main queue.

The state lives on the main queue as tags, so every consumer can read it without any other
infrastructure: ``northmigrate:tap`` (``open`` or ``closed``; no tag means open) and
``northmigrate:tap-limit`` (a positive integer; no tag means no limit).

- Lambda: closing disables every event source mapping that reads the queue, opening enables
  them; a limit sets their ``ScalingConfig.MaximumConcurrency`` (AWS takes 2 to 1000), or,
  for a mapping in provisioned mode (``ProvisionedPollerConfig``, which AWS refuses beside a
  maximum concurrency), its ``MaximumPollers`` (2 to 10,000; the minimum lowered to it).
- Local workers read the tags through a ``TapGate`` (cached for ``ttl`` seconds, 2 by
  default): while closed they stop receiving (messages in flight finish), and a limit caps
  the records they handle per second. ``deploy`` honours the tags too: it never reopens a
  closed tap or lifts a limit.

Messages simply wait in the queue while the tap is closed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

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
    cutover: str | None = None  # a cutover under way: "held" or "switched"
    cutover_old: tuple[str, ...] = ()  # the mappings it keeps disabled

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> TapState:
        limit_text = tags.get(TAG_LIMIT, "")
        limit = int(limit_text) if limit_text.isdigit() and int(limit_text) > 0 else None
        is_open = tags.get(TAG_STATE, OPEN) != CLOSED
        cutover = tags.get(CUTOVER_TAG) or None
        old = tuple(tags.get(CUTOVER_FROM_TAG, "").split()) if cutover else ()
        if is_open:
            return cls(open=True, limit=limit, cutover=cutover, cutover_old=old)
        return cls(
            open=False,
            limit=limit,
            cutover=cutover,
            cutover_old=old,
            closed_by=tags.get(TAG_BY) or None,
            closed_at=tags.get(TAG_AT) or None,
            reason=tags.get(TAG_REASON) or None,
        )

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
        }


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
    ) -> None:
        self.sqs = clients.client("sqs")
        self.clients = clients
        self.queues = queues
        self.default_limit = default_limit  # the mappings' concurrency with no tap limit
        self.default_pollers = default_pollers  # the same, in provisioned mode
        self.sleep = sleep

    @property
    def _lambda(self) -> LambdaClient:
        return self.clients.client("lambda")

    def _mapping_states(self) -> list[MappingState]:
        arn = self.queues.arn(self.queues.main_url())
        try:
            found = mappings(self._lambda, arn)
        except AwsError as exc:
            if error_code(exc.__cause__ or exc) in {"UnknownOperationException", "NotFound"}:
                return []  # an endpoint without Lambda: local workers only
            raise
        return [MappingState.from_api(m) for m in found]

    def status(self) -> TapReport:
        url = self.queues.main_url()
        return TapReport(self.queues.main_name, read_state(self.sqs, url), self._mapping_states())

    def _tag(self, tags: dict[str, str]) -> None:
        with aws_errors(f"tag queue {self.queues.main_name}"):
            self.sqs.tag_queue(QueueUrl=self.queues.main_url(), Tags=tags)

    def _update_mappings(self, *, keep: tuple[str, ...] = (), **changes: Any) -> None:
        """Apply ``changes`` to every mapping of the queue but the ones in ``keep``."""
        arn = self.queues.arn(self.queues.main_url())
        try:
            found = mappings(self._lambda, arn)
        except AwsError as exc:
            if error_code(exc.__cause__ or exc) in {"UnknownOperationException", "NotFound"}:
                return  # an endpoint without Lambda: local workers only
            raise
        for mapping in found:
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

    def open(self) -> TapReport:
        """Enable the mappings (but an old consumer a cutover keeps disabled); refused while
        a cutover holds the queue."""
        state = read_state(self.sqs, self.queues.main_url())
        if state.cutover == CUTOVER_HELD:
            name = self.queues.main_name
            raise Refused(
                f"queue {name} is held by cutover: opening the tap would enable its consumers",
                hint=f"cutover switch --queue {name} --to FUNCTION, or cutover rollback "
                f"--queue {name}",
            )
        self._update_mappings(Enabled=True, keep=state.cutover_old)
        self._tag({TAG_STATE: OPEN})
        with aws_errors(f"untag queue {self.queues.main_name}"):
            self.sqs.untag_queue(
                QueueUrl=self.queues.main_url(), TagKeys=[TAG_BY, TAG_AT, TAG_REASON]
            )
        return self.status()

    def limit(self, n: int | None) -> TapReport:
        """Cap consumption at ``n``; None lifts the cap (mappings go back to the config's
        maximum concurrency, or maximum pollers in provisioned mode)."""
        found = self._mapping_states()
        provisioned = bool(found) and all(m.mode == PROVISIONED for m in found)
        ceiling = MAX_POLLERS if provisioned else MAX_MAPPING_CONCURRENCY
        if n is not None and not MIN_MAPPING_CONCURRENCY <= n <= ceiling:
            raise InputError(
                f"tap limit {n} is out of range",
                hint=f"give {MIN_MAPPING_CONCURRENCY} to {ceiling} (AWS's range for an event "
                f"source mapping's maximum concurrency, or up to {MAX_POLLERS} pollers when "
                "every mapping is in provisioned mode)",
            )
        if n is None:
            with aws_errors(f"untag queue {self.queues.main_name}"):
                self.sqs.untag_queue(QueueUrl=self.queues.main_url(), TagKeys=[TAG_LIMIT])
        else:
            self._tag({TAG_LIMIT: str(n)})
        for mapping in found:
            default = self.default_pollers if mapping.mode == PROVISIONED else self.default_limit
            changes = mapping.limited(n, default)
            if changes is not None:
                wait_mapping(self._lambda, mapping.uuid, sleep=self.sleep)
                with aws_errors(f"update event source mapping {mapping.uuid}"):
                    self._lambda.update_event_source_mapping(UUID=mapping.uuid, **changes)
        return self.status()


class Gate(Protocol):
    """What a worker needs from a tap (``TapGate``, ``OpenGate``, or a test's fake)."""

    def state(self) -> TapState: ...

    def is_open(self) -> bool: ...

    def limit(self) -> int | None: ...

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool: ...


class TapGate:
    """What a local worker asks before each receive: is the tap open, and at what limit?

    Reads the queue's tags at most once per ``ttl`` seconds (clock injectable). An error
    reading them keeps the last known state (a worker does not stop for a blip).
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.ttl = ttl
        self.clock = clock
        self._state = TapState()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def state(self) -> TapState:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                with contextlib.suppress(AwsError):
                    self._state = read_state(self.sqs, self.queue_url)
                self._read_at = now
            return self._state

    def is_open(self) -> bool:
        return self.state().open

    def limit(self) -> int | None:
        return self.state().limit

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool:
        """Block while the tap is closed; False when ``stop`` is set first."""
        while not stop.is_set():
            if self.is_open():
                return True
            stop.wait(poll)
        return False


class OpenGate:
    """A gate that is always open (a worker without a tap, and tests)."""

    def state(self) -> TapState:
        return TapState()

    def is_open(self) -> bool:
        return True

    def limit(self) -> int | None:
        return None

    def wait_open(self, stop: threading.Event, *, poll: float = 0.5) -> bool:
        return not stop.is_set()
