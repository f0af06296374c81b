"""``dlq redrive --processes N``: N redrives of one DLQ on this machine, reported as one run.

One process moves about 900 messages a second at +20 ms, its CPU (mostly botocore's) the
limit; N processes on N cores move more. Each runs :func:`northmigrate.dlq.redrive.redrive`
(send, confirm, then delete) with a client of its own. ``--max`` is one limit they take
from together (a count in shared memory, under its lock: a process that moves faster takes
more, and together they never pass it; fixed shares left the fast processes waiting, done,
while a slow one moved the rest of its share alone); ``--rate`` is divided (each gets R/N).
Each process holds what it read and did not move (not matching, not sent, not deleted)
until every process has finished, and only then are they all made visible again: one run
sees each message once, over all its processes.

A process that dies (SIGKILL, out of memory) ends without a report: it is named in the
result (``died``), the messages it held come back to the DLQ when their visibility timeout
lapses, and one it had sent but not yet deleted is in both queues (the worker is
idempotent). A rerun moves them; nothing is lost. What it had reserved of ``--max`` stays
reserved: the others may move that many fewer than ``--max``, never more. A stop (Ctrl-C,
SIGTERM) reaches every process, and each finishes the chunks it has in flight. When this
process dies, the others notice, stop, and give back what they hold.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait as wait_for
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.sqs.queue import depth, queue_name
from northmigrate.aws.sqs.reader import back_within_s
from northmigrate.config import SQS_MAX_MESSAGE_SIZE, AwsSettings
from northmigrate.dlq.budget import SharedMax
from northmigrate.dlq.redrive import REDRIVE_VISIBILITY_S, redrive
from northmigrate.dlq.report import MODE_CLIENT, Progress, RedriveReport
from northmigrate.dlq.where import Condition
from northmigrate.errors import EXIT_INTERNAL, InputError, NorthmigrateError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnProcess

    from mypy_boto3_sqs import SQSClient

PROGRESS_EVERY_S = 0.25
RELEASE = "release"  # the parent's one word to its processes: every one is done
MAX_PROCESSES = 64
# How an ending ranks when the processes of one run ended differently: the first found.
_ENDINGS = ("error", "stop", "died", "in_flight_limit", "stale", "empty", "max")


@dataclass(frozen=True)
class SqsFactory:
    """Builds a process's own SQS client from the run's AWS settings (picklable: it crosses
    into each process)."""

    aws: AwsSettings
    origins: Mapping[str, str] = field(default_factory=dict)
    pool_size: int = 10

    def __call__(self) -> SQSClient:
        return AwsClients(self.aws, pool_size=self.pool_size, origins=self.origins).client("sqs")


@dataclass(frozen=True)
class Job:
    """One process's part of the run: the same redrive, with its share of --rate (--max is
    the run's, taken from together)."""

    sqs: Callable[[], SQSClient]
    source_url: str
    destination_url: str
    conditions: tuple[Condition, ...] = ()
    max_messages: int | None = None
    rate: float | None = None
    dry_run: bool = False
    concurrency: int = 8
    max_message_size: int = SQS_MAX_MESSAGE_SIZE
    visibility_timeout: int = REDRIVE_VISIBILITY_S
    wait_time_s: int = 1
    run_id: str = ""


class _Line:
    """A process's end of its own pipe to the parent. A pipe each, not one queue shared by
    all: a process killed in the middle of a write then damages only its own line (the
    parent reads the end of it as the process's death), never the others' nor a lock they
    share."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()  # the redrive's threads report progress too

    def send(self, kind: str, payload: object = None) -> None:
        with self.lock, contextlib.suppress(OSError):  # the parent is gone: nothing to tell
            self.conn.send((kind, payload))

    def released(self, timeout: float) -> bool:
        """True once the parent said every process is done (or cannot say it any more)."""
        try:
            return self.conn.poll(timeout) and self.conn.recv() == RELEASE
        except (EOFError, OSError):
            return True


class _Signals:
    """A process's stop: SIGINT or SIGTERM (Ctrl-C, or the parent passing a stop on), or its
    parent's death. The handler takes no lock: it runs in the main thread, which may hold
    the stop event's own lock at that moment (``Event.set`` is not reentrant); it raises a
    flag that a watcher thread turns into the stop. A second SIGINT aborts."""

    def __init__(self, stop: threading.Event, orphaned: Callable[[], bool]) -> None:
        self.stop = stop
        self.orphaned = orphaned
        self.got: list[int] = []  # appended to, never locked

    def handle(self, signum: int, frame: object = None) -> None:
        if signum == signal.SIGINT and signal.SIGINT in self.got:
            raise KeyboardInterrupt
        self.got.append(signum)

    def watch(self) -> None:
        while not self.stop.wait(0.1):
            if self.got or self.orphaned():
                self.stop.set()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle)
        threading.Thread(target=self.watch, name="nm-redrive-watch", daemon=True).start()


def _child(job: Job, conn: Connection, shared_max: SharedMax | None = None) -> None:
    """A process of the run: the redrive, its progress and its report sent to the parent."""
    line = _Line(conn)
    stop = threading.Event()
    parent = multiprocessing.parent_process()

    def orphaned() -> bool:
        return parent is not None and not parent.is_alive()

    _Signals(stop, orphaned).install()
    last = [0.0]

    def progress(report: RedriveReport) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            line.send("progress", report)

    def hold_until_all_done() -> None:
        line.send("holding")
        while not line.released(0.2) and not orphaned():
            pass

    try:
        report = _run(job, stop, progress, hold_until_all_done, shared_max)
    except NorthmigrateError as exc:  # before any message was read: nothing to give back
        report = RedriveReport(queue_name(job.source_url), queue_name(job.destination_url))
        report.error, report.ended = exc, "error"
        hold_until_all_done()
    except Exception as exc:  # a bug: what it held is given back (redrive's finally) by now
        # Its class only, no traceback and no message (which could quote a record): the
        # parent names the process as died, with this and the exit code.
        line.send("crashed", type(exc).__name__)
        os._exit(EXIT_INTERNAL)
    line.send("done", report)


def _run(
    job: Job,
    stop: threading.Event,
    progress: Progress,
    before_release: Callable[[], None],
    shared_max: SharedMax | None = None,
) -> RedriveReport:
    return redrive(
        job.sqs(),
        job.source_url,
        job.destination_url,
        conditions=job.conditions,
        max_messages=job.max_messages,
        rate=job.rate,
        dry_run=job.dry_run,
        concurrency=job.concurrency,
        stop=stop,
        progress=progress,
        max_message_size=job.max_message_size,
        visibility_timeout=job.visibility_timeout,
        wait_time_s=job.wait_time_s,
        run_id=job.run_id,
        count_in_flight=False,
        before_release=before_release,
        shared_max=shared_max,
    )


def redrive_processes(
    sqs: SQSClient,
    job: Job,
    processes: int,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    started: Callable[[Sequence[int]], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> RedriveReport:
    """Run ``job`` on ``processes`` processes (see the module docstring) and return their
    total. ``sqs`` (this process's client) counts the dead letters hidden at the start;
    ``started`` is told the processes' ids."""
    if not 1 <= processes <= MAX_PROCESSES:
        raise InputError(f"--processes must be between 1 and {MAX_PROCESSES}")
    if job.max_messages is not None and job.max_messages < 1:
        raise InputError("--max must be at least 1")
    if job.rate is not None and job.rate <= 0:
        raise InputError("--rate must be a positive number of messages per second")
    if job.source_url == job.destination_url:
        raise InputError("the destination of a redrive cannot be the DLQ itself")
    n = min(processes, job.max_messages) if job.max_messages is not None else processes
    run_id = job.run_id or secrets.token_hex(8)  # one run, one id (its redrives entries)
    rate = job.rate / n if job.rate is not None else None
    jobs = [replace(job, rate=rate, run_id=run_id) for _ in range(n)]
    total = RedriveReport(
        source=queue_name(job.source_url),
        destination=queue_name(job.destination_url),
        mode=MODE_CLIENT,
        dry_run=job.dry_run,
    )
    total.in_flight = depth(sqs, job.source_url).in_flight
    if total.in_flight:
        total.back_within_s = max(back_within_s(sqs, job.source_url), job.visibility_timeout)
    began = monotonic()
    run = _Parent(jobs, stop or threading.Event(), progress, total)
    try:
        run.start()
        if started is not None:
            started([p.pid or 0 for p in run.procs])
        run.wait()
    finally:
        run.close()
        total.duration_s = monotonic() - began
    return run.merge()


class _Parent:
    """The processes of one run, seen from the parent: their lines, stops and ends."""

    def __init__(
        self,
        jobs: list[Job],
        stop: threading.Event,
        progress: Progress | None,
        total: RedriveReport,
    ) -> None:
        self.ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self.jobs = jobs
        # --max, one count for all: [moved, reserved] (zeros), under the array's own lock
        self.shared_max = self.ctx.Array("q", 2) if jobs[0].max_messages is not None else None
        self.stop = stop
        self.progress = progress
        self.total = total
        self.procs: list[SpawnProcess] = []
        self.lines: dict[int, Connection] = {}  # the open ones
        self.latest: dict[int, RedriveReport] = {}
        self.final: dict[int, RedriveReport] = {}
        self.holding: set[int] = set()
        self.dead: dict[int, int | None] = {}
        self.crashed: dict[int, str] = {}  # the class of a process's unexpected exception
        self.released = False
        self.forwarded = False

    def start(self) -> None:
        for i, job in enumerate(self.jobs):
            mine, theirs = self.ctx.Pipe()
            proc = self.ctx.Process(
                target=_child,
                args=(job, theirs, self.shared_max),
                name=f"nm-redrive-{i}",
                daemon=False,
            )
            proc.start()
            theirs.close()  # only the process holds its end: its death is the line's end
            self.procs.append(proc)
            self.lines[i] = mine

    def wait(self) -> None:
        while len(self.final) + len(self.dead) < len(self.procs):
            self._take(timeout=0.2)
            if self.stop.is_set() and not self.forwarded:
                self.forwarded = True
                self._signal(signal.SIGTERM)
            for i, proc in enumerate(self.procs):
                if i in self.final or i in self.dead or i in self.lines or proc.is_alive():
                    continue
                proc.join()
                self.dead[i] = proc.exitcode  # its line ended without its report
            if not self.released and len(self.holding | set(self.final) | set(self.dead)) == len(
                self.procs
            ):
                self._release()  # every process is done: each gives back what it holds

    def _take(self, timeout: float) -> None:
        ready = wait_for(list(self.lines.values()), timeout)
        for i, conn in list(self.lines.items()):
            if conn not in ready:
                continue
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):  # ended, maybe mid-message
                conn.close()
                del self.lines[i]
                continue
            self._event(i, kind, payload)

    def _event(self, i: int, kind: str, payload: Any) -> None:
        if kind == "holding":
            self.holding.add(i)
        elif kind == "crashed":
            self.crashed[i] = payload
        elif kind in ("progress", "done"):
            self.latest[i] = payload
            if kind == "done":
                self.final[i] = payload
                if payload.error is not None and not self.forwarded:
                    self.forwarded = True  # as one run: the others stop too
                    self._signal(signal.SIGTERM)
            if self.progress is not None:
                self.progress(self.merge())

    def _release(self) -> None:
        self.released = True
        for conn in self.lines.values():
            with contextlib.suppress(OSError):
                conn.send(RELEASE)

    def _signal(self, sig: int) -> None:
        for proc in self.procs:
            if proc.is_alive() and proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def close(self) -> None:
        """The processes still running (this one is being torn down) are asked to stop and
        give back what they hold; then waited for."""
        if any(proc.is_alive() for proc in self.procs):
            self._release()
            self._signal(signal.SIGTERM)
        for proc in self.procs:
            proc.join(timeout=60)
            if proc.is_alive():  # stuck: what it holds comes back with its visibility timeout
                proc.kill()
                proc.join()
        for conn in self.lines.values():
            conn.close()

    def merge(self) -> RedriveReport:
        total = self.total.snapshot()
        total.processes = []
        endings = []
        for i, job in enumerate(self.jobs):
            r = self.latest.get(i)
            entry: dict[str, Any] = {"index": i, "rate": job.rate}
            if r is not None:
                for name in ("read", "matched", "moved", "skipped", "failed", "delete_failed"):
                    setattr(total, name, getattr(total, name) + getattr(r, name))
                    entry[name] = getattr(r, name)
                total.failure_reasons.update(r.failure_reasons)
                if r.error is not None and total.error is None:
                    total.error = r.error
            if i in self.final:
                entry["ended"] = self.final[i].ended
                endings.append(self.final[i].ended)
            elif i in self.dead:
                code = self.dead[i]
                entry |= {"ended": "died", "died": True, "exit_code": code}
                entry["signal"] = signal.Signals(-code).name if code and code < 0 else None
                if i in self.crashed:
                    entry["crashed"] = self.crashed[i]
                endings.append("died")
            total.processes.append(entry)
        total.ended = next((e for e in _ENDINGS if e in endings), endings[0] if endings else "")
        # a stop the others got because one failed is the error's, not an interruption
        total.interrupted = self.stop.is_set() or ("stop" in endings and "error" not in endings)
        return total
