"""Status of the whole migration: the main queue and the DLQ side by side, and the progress
of the last run (the ``status`` command shows it, with the tap).

The progress is what the queues can tell: ``remaining`` messages in the main queue and
``dead_lettered`` in the DLQ. When a run state file exists (``.northmigrate/last-run.json``
in the working directory: ``{"run_id", "enqueued", "at", "source", "queue", "parts"}``,
kept by whoever enqueues, see :class:`RunRecorder`), ``done`` = enqueued - remaining -
dead-lettered and a percentage are added. A run is the migration of one source to one queue
across its resumed parts: a canary (``--limit``) and the ``--from-line`` (or ``--resume``)
runs that continue it add up under the first part's run id; an enqueue from the start begins
a new run. The record is brought up to date while enqueue sends, so ``status`` follows a part
in progress. The queues hold every run's messages alike, so with several runs in flight at
once the figures are of all of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from northmigrate.aws.sqs.queue import Depth, depth, queue_name
from northmigrate.privatefile import check_dirs, private_dir, replace_private

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

LAST_RUN_FILE = Path(".northmigrate") / "last-run.json"


@dataclass(frozen=True)
class LastRun:
    run_id: str
    enqueued: int
    at: str
    source: str | None = None
    queue: str | None = None
    parts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "enqueued": self.enqueued,
            "at": self.at,
            "source": self.source,
            "queue": self.queue,
            "parts": self.parts,
        }


def read_last_run(path: Path = LAST_RUN_FILE) -> LastRun | None:
    """The last run's state, or None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        source, queue = data.get("source"), data.get("queue")
        return LastRun(
            str(data["run_id"]),
            int(data["enqueued"]),
            str(data.get("at", "")),
            None if source is None else str(source),
            None if queue is None else str(queue),
            max(1, int(data.get("parts", 1))),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_last_run(run: LastRun, path: Path = LAST_RUN_FILE) -> None:
    """Record a run (atomically: a reader sees the old file or the new one; a link planted
    at the path is replaced, never written through)."""
    private_dir(path.parent, "state directory")
    replace_private(path, (json.dumps(run.to_dict()) + "\n").encode(), "last-run file")


class RunRecorder:
    """Keeps the run state file of one enqueue part up to date.

    ``continues`` (a ``--from-line`` or ``--resume`` part): when the file's run is of the
    same source and queue, this part's records add to it (one more part); else, or for a
    part that starts from the beginning, it begins a new run under ``run_id``. Nothing is
    written until a record was enqueued.
    """

    def __init__(
        self,
        run_id: str,
        source: str,
        queue: str,
        *,
        continues: bool,
        now: Callable[[], str],
        path: Path = LAST_RUN_FILE,
    ) -> None:
        self.path, self.now = path, now
        check_dirs(path.parent, "state directory")  # before any record is sent, not after
        earlier = read_last_run(path) if continues else None
        if earlier is not None and (earlier.source, earlier.queue) == (source, queue):
            self.base = replace(earlier, parts=earlier.parts + 1)
        else:
            self.base = LastRun(run_id, 0, now(), source, queue, 1)
        self.written = -1

    def update(self, enqueued: int) -> None:
        """This part has enqueued ``enqueued`` records so far."""
        if enqueued > 0 and enqueued != self.written:
            run = replace(self.base, enqueued=self.base.enqueued + enqueued, at=self.now())
            write_last_run(run, self.path)
            self.written = enqueued


@dataclass(frozen=True)
class StatusReport:
    main_queue: str
    dlq: str
    main: Depth
    dead: Depth
    last_run: LastRun | None

    @property
    def progress(self) -> dict[str, Any]:
        out: dict[str, Any] = {"remaining": self.main.total, "dead_lettered": self.dead.total}
        if self.last_run is not None:
            run = self.last_run
            done = max(0, run.enqueued - self.main.total - self.dead.total)
            out |= {
                "run_id": run.run_id,
                "parts": run.parts,
                "enqueued": run.enqueued,
                "done": done,
                "done_pct": round(100.0 * done / run.enqueued, 1) if run.enqueued else None,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "main_queue": self.main_queue,
            "dlq_queue": self.dlq,
            "main": self.main.to_dict(),
            "dlq": self.dead.to_dict(),
            "last_run": self.last_run.to_dict() if self.last_run else None,
            "progress": self.progress,
        }


def status(
    sqs: SQSClient,
    main_url: str,
    dlq_url: str,
    *,
    last_run_file: Path = LAST_RUN_FILE,
) -> StatusReport:
    return StatusReport(
        main_queue=queue_name(main_url),
        dlq=queue_name(dlq_url),
        main=depth(sqs, main_url),
        dead=depth(sqs, dlq_url),
        last_run=read_last_run(last_run_file),
    )
