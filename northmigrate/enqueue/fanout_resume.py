"""``enqueue s3://… --resume-fan-out RUN``: run again the shards of a fan-out run that did
not finish, each from where it stopped (its ``state.json`` in the run store).

The shards run as a new execution of the same state machine, named ``RUN-rK``, over the
items ``shards-rK.json`` of the run's store: the same items (source, shard, run, store,
listing) as the first execution's, for the unfinished shards only. Not Step Functions'
``RedriveExecution``: the Map tolerates every child's failure, so that one shard's bad luck
never stops the others, and its execution therefore ends ``SUCCEEDED``, which that API does
not redrive (nor does ministack know the API).

Never two executions on one shard's state: while the run's newest execution runs, resuming
follows it instead of starting another; once it ended other than ``SUCCEEDED`` (stopped,
timed out, failed), resuming waits until the enqueue function's timeout has passed since:
stopping an execution does not stop a Lambda invocation it started, and a child still at
work would send its shard alongside its resumption. An execution that ``SUCCEEDED`` had
every child's task answered (each child's last invocation returned or timed out), so
nothing of it still runs. A run whose every shard finished starts nothing. A source whose
objects changed since the run started is refused (exit 2): its shards would be cut
differently.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS, error_code, translate
from northmigrate.enqueue.fanout import FanOut, SFNClient, launch, map_items
from northmigrate.enqueue.store import RunStore
from northmigrate.errors import InputError, Interrupted
from northmigrate.sources.shard import Shard, parse_shard

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_RESUMES = 99  # executions RUN-r1 … RUN-r99 of one run
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # an execution's name, with room for -rK


def execution_arn(machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of the state machine ``machine_arn``."""
    head, _, machine = machine_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{machine}:{name}"


def _latest(sfn: SFNClient, machine_arn: str, run_id: str) -> tuple[int, dict[str, Any]]:
    """The run's newest execution (``RUN``, then ``RUN-r1``, ``RUN-r2`` …): its number
    (0: the first) and its description."""
    found: tuple[int, dict[str, Any]] | None = None
    for attempt in range(MAX_RESUMES + 1):
        arn = execution_arn(machine_arn, run_id if attempt == 0 else f"{run_id}-r{attempt}")
        try:
            described = sfn.describe_execution(executionArn=arn)
        except AWS_EXCEPTIONS as exc:
            if error_code(exc) != "ExecutionDoesNotExist":
                raise translate(exc, f"execution {arn}") from exc
            if found is None:
                raise InputError(
                    f"the fan-out run {run_id} has no execution on {machine_arn}",
                    hint="the run id is in the fan-out's output (run_id); its state machine "
                    "is the one deploy made for this queue",
                ) from exc
            return found
        found = (attempt, described)
    assert found is not None
    return found


def resume(
    sfn: SFNClient,
    s3: S3Client,
    *,
    machine_arn: str,
    source: str,
    bucket: str,
    run_id: str,
    listing: str | None,
    function_timeout_s: float = 900.0,
    wait: Callable[[float], object] = time.sleep,
    on_wait: Callable[[float], object] = lambda seconds: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FanOut:
    """Run again the shards of ``run_id`` that did not finish (each resumes from its state),
    as a new execution; follow the run's execution instead when it is still running, and
    start nothing when every shard finished. InputError (exit 2) for an unknown run, another
    source, or a source whose objects changed since the run started.

    Before it starts, when the newest execution was stopped, timed out or failed, it waits
    (``on_wait`` told how long; ``wait`` returning true: Interrupted) until
    ``function_timeout_s`` has passed since it ended: every child that execution started
    has ended by then."""
    if not RUN_ID.fullmatch(run_id):
        raise InputError(
            f"{run_id!r} is not a fan-out run id",
            hint="the run id is in the fan-out's output (run_id), e.g. 20261206T234132Z-4fbe08",
        )
    store = RunStore(bucket, run_id)
    items = _read_items(s3, store)
    first = items[0]
    if first.get("source") != source:
        raise InputError(
            f"the fan-out run {run_id} read {first.get('source')}, not {source}",
            hint=f"northmigrate enqueue {first.get('source')} --resume-fan-out {run_id}",
        )
    if first.get("listing") is not None and first.get("listing") != listing:
        raise InputError(
            f"the objects of {source} changed since the fan-out run {run_id} started (an "
            "object was added, removed or rewritten): its shards would be cut differently",
            hint=f"start a new run: northmigrate enqueue {source} --fan-out auto (a record "
            "sent twice is harmless: the consumers are idempotent)",
        )
    count = parse_shard(str(first["shard"]), env={}).count
    attempt, described = _latest(sfn, machine_arn, run_id)
    run = FanOut(str(described["executionArn"]), store, source, count, action="followed")
    if described["status"] == "RUNNING":  # never two executions on one shard's state
        return run
    unfinished = _unfinished(s3, store, count)
    if not unfinished:
        run.action = "finished"
        return run
    if attempt >= MAX_RESUMES:
        raise InputError(
            f"the fan-out run {run_id} was resumed {MAX_RESUMES} times already",
            hint="start a new run over the source",
        )
    settle = settle_s(described, function_timeout_s, now())
    if settle > 0:
        on_wait(settle)
        if wait(settle):
            raise Interrupted(f"stopped before resuming the fan-out {run_id}")
        unfinished = _unfinished(s3, store, count)
        if not unfinished:
            run.action = "finished"
            return run
    name = f"{run_id}-r{attempt + 1}"
    key = f"{store.prefix}shards-r{attempt + 1}.json"
    arn = launch(
        sfn, s3, machine_arn, store, key, name, map_items(store, source, unfinished, listing)
    )
    return FanOut(arn, store, source, count, running=[str(s) for s in unfinished], action="resumed")


def _unfinished(s3: S3Client, store: RunStore, count: int) -> list[Shard]:
    """The shards of the run without a ``report.json``, from one listing of its store."""
    done: set[str] = set()
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=store.prefix
        )
        for page in pages:
            done |= {str(o["Key"]) for o in page.get("Contents", [])}
    except AWS_EXCEPTIONS as exc:
        raise translate(exc, f"S3 ListObjectsV2 {store.uri}") from exc
    every = [Shard(n, count) for n in range(count)]
    return [s for s in every if store.shard_prefix(s) + "report.json" not in done]


def settle_s(described: dict[str, Any], function_timeout_s: float, now: datetime) -> float:
    """How long until an execution's children have surely ended: none for one that
    succeeded, else the function's timeout after it ended (the whole timeout when its stop
    time is not known)."""
    if described.get("status") == "SUCCEEDED":
        return 0.0
    stopped = described.get("stopDate")
    if not isinstance(stopped, datetime):
        return function_timeout_s
    if stopped.tzinfo is None:
        stopped = stopped.replace(tzinfo=UTC)
    return max(0.0, function_timeout_s - (now - stopped).total_seconds())


def _read_items(s3: S3Client, store: RunStore) -> list[dict[str, Any]]:
    try:
        body = s3.get_object(Bucket=store.bucket, Key=store.shards_key)["Body"].read()
    except AWS_EXCEPTIONS as exc:
        if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
            raise InputError(
                f"no fan-out run {store.run_id} in s3://{store.bucket}/ ({store.shards_key} "
                "is missing)",
                hint="the run id is in the fan-out's output (run_id)",
            ) from exc
        raise translate(exc, f"S3 GetObject s3://{store.bucket}/{store.shards_key}") from exc
    try:
        items = json.loads(body)
    except ValueError:
        items = None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise InputError(f"s3://{store.bucket}/{store.shards_key} is not a fan-out's items")
    return items


__all__ = ["MAX_RESUMES", "execution_arn", "resume", "settle_s"]
