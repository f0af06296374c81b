"""Status of the whole migration: the main queue and the DLQ side by side, and the progress
of the last run (the ``status`` command shows it, with the tap).

The progress is what the queues can tell: ``remaining`` messages in the main queue and
``dead_lettered`` in the DLQ. When a run state file exists (``.northmigrate/last-run.json``
in the working directory: ``{"run_id", "enqueued", "at"}``, written by whoever enqueued, see
:func:`write_last_run`), ``done`` = enqueued - remaining - dead-lettered and a percentage are
added. The queues hold every run's messages alike, so with several runs in flight at once
the figures are of all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from northmigrate.privatefile import private_dir, replace_private
from northmigrate.sqs.queue import Depth, depth, queue_name

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

LAST_RUN_FILE = Path(".northmigrate") / "last-run.json"


@dataclass(frozen=True)
class LastRun:
    run_id: str
    enqueued: int
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "enqueued": self.enqueued, "at": self.at}


def read_last_run(path: Path = LAST_RUN_FILE) -> LastRun | None:
    """The last run's state, or None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LastRun(str(data["run_id"]), int(data["enqueued"]), str(data.get("at", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_last_run(run: LastRun, path: Path = LAST_RUN_FILE) -> None:
    """Record a run (atomically: a reader sees the old file or the new one; a link planted
    at the path is replaced, never written through)."""
    private_dir(path.parent, "state directory")
    replace_private(path, (json.dumps(run.to_dict()) + "\n").encode(), "last-run file")


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
