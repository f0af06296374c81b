"""``enqueue s3://… --fan-out N``: the N shards of an S3 source, each a Lambda child of a Step
Functions Distributed Map (``deploy`` with ``deploy.fan_out``, docs/deploy.md).

The run writes the Map's items (one ``{source, shard, run, store, listing}`` per shard) to
the fan-out bucket, starts the state machine, follows the map run's counts, then adds up the
shards' reports into one ``EnqueueReport``, as a local run prints it. A shard that did not
finish (its retries spent, a source it cannot read, the run stopped) is named with its
error; the run's exit code is the worst shard's (2: the source, 3: AWS, 1: records not sent).

``--resume-fan-out RUN`` runs again the shards of RUN that did not finish
(``northmigrate.enqueue.fanout_resume``). ``listing``, the digest of the source's objects
when the run started, keeps every shard's cut the same across its attempts: a source that
changed since is refused, by the resume and by every child.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS, aws_errors, translate
from northmigrate.enqueue.child import COUNTS, MAX_ERRORS
from northmigrate.enqueue.job import EnqueueReport
from northmigrate.enqueue.store import RunStore, ShardStore
from northmigrate.errors import EXIT_ATTENTION, Interrupted, NorthmigrateError
from northmigrate.records.validation import Rejection
from northmigrate.sources.shard import Shard

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SFNClient = Any  # a boto3 "stepfunctions" client (no type stubs installed for it)

BYTES_PER_SHARD = 256 * 1024 * 1024  # ~5 minutes at ~1 MB/s: well inside Lambda's 15
MAX_SHARDS = 10_000  # a Distributed Map's children at once
HANDLER = "northmigrate.enqueue.child.handler"


class FanOutIncomplete(NorthmigrateError):
    """Some shards did not finish; the exit code is the worst shard's."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


def bounded_name(base: str, suffix: str, limit: int) -> str:
    """``base + suffix`` within ``limit`` characters (a short digest keeps it unique)."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", base)
    if len(clean) + len(suffix) <= limit:
        return clean + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{clean[: limit - len(suffix) - 9]}-{digest}{suffix}"


def state_machine_name(queue: str) -> str:
    return bounded_name(queue, "-fan-out", 80)


def enqueue_function_name(queue: str) -> str:
    return bounded_name(queue, "-enqueue", 64)


def role_of(name: str) -> str:
    """The role of the enqueue function or of the state machine ``name``."""
    return bounded_name(name, "-role", 64)


def state_machine_arn(queue_arn: str, name: str) -> str:
    """The state machine's ARN, in the main queue's partition, region and account."""
    _, partition, _, region, account, _ = queue_arn.split(":", 5)
    return f"arn:{partition}:states:{region}:{account}:stateMachine:{name}"


def source_prefix(uri: str) -> str:
    """An entry of ``deploy.fan_out_sources`` as a prefix: ``s3://BUCKET`` is the whole
    bucket, ``s3://BUCKET/`` too."""
    return uri if "/" in uri.removeprefix("s3://") else uri + "/"


def default_shards(total_bytes: int) -> int:
    """One shard per ``BYTES_PER_SHARD`` of source, 1 to ``MAX_SHARDS``."""
    return max(1, min(MAX_SHARDS, math.ceil(total_bytes / BYTES_PER_SHARD)))


@dataclass(frozen=True, slots=True)
class MapProgress:
    status: str  # the execution's: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    error: str | None = None  # why the execution failed, when it did


@dataclass
class FanOut:
    """One started (or resumed, or followed) run."""

    execution_arn: str
    store: RunStore
    source: str
    shards: int  # the run's, however many this execution runs
    rejects: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)  # the shards this execution runs
    # started: a new run; resumed: its unfinished shards run again; followed: resuming found
    # its execution still running; finished: resuming found every shard finished
    action: str = "started"


def map_items(store: RunStore, source: str, shards: list[Shard], listing: str | None) -> list[Any]:
    return [
        {"source": source, "shard": str(shard), "run": store.run_id, "store": store.uri}
        | ({"listing": listing} if listing is not None else {})
        for shard in shards
    ]


def launch(
    sfn: SFNClient,
    s3: S3Client,
    machine_arn: str,
    store: RunStore,
    key: str,
    name: str,
    items: list[Any],
) -> str:
    """Write ``items`` at ``key`` of the store and start the execution ``name`` over them."""
    try:
        s3.put_object(
            Bucket=store.bucket,
            Key=key,
            Body=json.dumps(items).encode(),
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )
    except AWS_EXCEPTIONS as exc:
        raise translate(exc, f"S3 PutObject s3://{store.bucket}/{key}") from exc
    with aws_errors(f"state machine {machine_arn}"):
        started = sfn.start_execution(
            stateMachineArn=machine_arn,
            name=name,
            input=json.dumps({"bucket": store.bucket, "key": key}),
        )
    return str(started["executionArn"])


def start(
    sfn: SFNClient,
    s3: S3Client,
    *,
    machine_arn: str,
    source: str,
    shards: int,
    bucket: str,
    run_id: str,
    listing: str | None = None,
) -> FanOut:
    """Write the Map's items and start the state machine (execution name: the run id)."""
    store = RunStore(bucket, run_id)
    every = [Shard(n, shards) for n in range(shards)]
    items = map_items(store, source, every, listing)
    arn = launch(sfn, s3, machine_arn, store, store.shards_key, run_id, items)
    return FanOut(arn, store, source, shards, running=[str(s) for s in every])


def resume_command(source: str, run_id: str) -> str:
    """The command that runs the unfinished shards of ``run_id`` again."""
    return f"northmigrate enqueue {source} --resume-fan-out {run_id}"


def progress(sfn: SFNClient, execution_arn: str) -> MapProgress:
    """The execution's status and its map run's item counts (none before the map starts)."""
    with aws_errors(f"execution {execution_arn}"):
        described = sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        error = described.get("error")
        if error and described.get("cause"):
            error = f"{error} ({described['cause']})"
        runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if not runs:
            return MapProgress(status, error=error)
        counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]
    return MapProgress(
        status,
        error=error,
        total=counts.get("total", 0),
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0) + counts.get("timedOut", 0) + counts.get("aborted", 0),
        running=counts.get("running", 0),
        pending=counts.get("pending", 0),
    )


def wait(
    sfn: SFNClient,
    run: FanOut,
    *,
    on_progress: Callable[[MapProgress], None] = lambda p: None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] = time.sleep,
    poll_s: float = 2.0,
) -> MapProgress:
    """Follow the run until it ends. ``stop`` set (Ctrl-C): the execution is stopped, and
    Interrupted raised (what the shards sent stays sent)."""
    while True:
        now = progress(sfn, run.execution_arn)
        on_progress(now)
        if now.status != "RUNNING":
            return now
        if stop is not None and stop.is_set():
            with aws_errors(f"execution {run.execution_arn}"):
                sfn.stop_execution(executionArn=run.execution_arn, cause="stopped by the user")
            raise Interrupted(
                f"stopped the fan-out {run.store.run_id}",
                hint="what the shards sent stays sent; the rest: "
                + resume_command(run.source, run.store.run_id),
            )
        (stop.wait if stop is not None else sleep)(poll_s)


def totals(s3: S3Client, run: FanOut, report: EnqueueReport) -> EnqueueReport:
    """Add up the shards' reports (or, for an unfinished shard, what its state holds) into
    ``report``; an unfinished shard sets ``report.error`` (FanOutIncomplete)."""
    unfinished: list[tuple[str, str, int]] = []
    tally = report.tally
    for index in range(run.shards):
        shard = Shard(index, run.shards)
        store = ShardStore(s3, run.store, shard)
        done = store.report()
        data = done if done is not None else (store.state() or {})
        if done is None:
            unfinished.append(
                (
                    str(shard),
                    str(data.get("error", "it never started")),
                    int(data.get("exit_code", 1)),
                )
            )
        counts = {key: int(data.get(key, 0)) for key in COUNTS}
        for key in ("read", "valid", "eligible", "ineligible", "invalid", "duplicates"):
            setattr(tally, key, getattr(tally, key) + counts[key])
        report.enqueued += counts["enqueued"]
        report.failed += counts["failed"]
        tally.errors_total += int(data.get("errors_total", 0))
        for entry in data.get("errors", []):
            if len(tally.errors) < MAX_ERRORS:
                tally.errors.append(Rejection(**entry))
        run.rejects += list(data.get("rejects", []))
    if unfinished:
        shown = "; ".join(f"shard {s}: {why}" for s, why, _ in unfinished[:3])
        more = f" (and {len(unfinished) - 3} more)" if len(unfinished) > 3 else ""
        report.error = FanOutIncomplete(
            f"{len(unfinished)} of {run.shards} shards did not finish: {shown}{more}",
            exit_code=max(code for _, _, code in unfinished) or EXIT_ATTENTION,
            hint="run them again, each from where it stopped: "
            + resume_command(run.source, run.store.run_id),
        )
    return report


__all__ = [
    "BYTES_PER_SHARD",
    "HANDLER",
    "FanOut",
    "FanOutIncomplete",
    "MapProgress",
    "default_shards",
    "enqueue_function_name",
    "launch",
    "map_items",
    "progress",
    "resume_command",
    "role_of",
    "source_prefix",
    "start",
    "state_machine_arn",
    "state_machine_name",
    "totals",
    "wait",
]
