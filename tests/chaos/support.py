"""Shared pieces of the fault-injection suite: profiles, fault plans, a fleet of killable CLI
processes, and readers of what ended up where (straight from the endpoint, never through
the proxy)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, cli_env
from support.proxy import FAULT_KINDS, FaultPlan

PROFILE_ENV = "NORTHMIGRATE_CHAOS"
SEED = int(os.environ.get("NORTHMIGRATE_CHAOS_SEED", "20261127"))


@dataclass(frozen=True)
class Profile:
    """How big and how hostile a run is."""

    name: str
    records: int  # valid records of the worker scenario
    invalid: int  # invalid lines in its source (rejected by enqueue, counted by reconcile)
    permanent: int  # the known-permanent subset
    transient_rate: float  # share of handler runs that fail transiently
    workers: int  # worker processes
    concurrency: int  # records at once in each
    kills: int  # SIGKILLs of workers, at seeded random moments
    kill_window_s: float  # the kills happen within this many seconds of the start
    enqueue_records: int
    enqueue_kills: int
    redrive_messages: int
    redrive_kills: int
    latency_s: float
    fault_rate: float  # probability of each fault kind, per request
    deadline_s: float  # a phase that takes longer than this fails the test


CI = Profile(
    name="ci",
    records=300,
    invalid=6,
    permanent=15,
    transient_rate=0.2,
    workers=4,
    concurrency=4,
    kills=6,
    kill_window_s=12.0,
    enqueue_records=200,
    enqueue_kills=2,
    redrive_messages=150,
    redrive_kills=2,
    latency_s=0.005,
    fault_rate=0.03,
    deadline_s=600.0,  # a bound for a busy 2-core machine, not a target
)
LARGE = Profile(
    name="large",
    records=4000,
    invalid=40,
    permanent=200,
    transient_rate=0.2,
    workers=4,
    concurrency=8,
    kills=24,
    kill_window_s=60.0,
    enqueue_records=4000,
    enqueue_kills=4,
    redrive_messages=2000,
    redrive_kills=4,
    latency_s=0.005,
    fault_rate=0.03,
    deadline_s=900.0,
)


def current_profile() -> Profile:
    return LARGE if os.environ.get(PROFILE_ENV, "").lower() == "large" else CI


# pytest-timeout's limit for a chaos test: the phases' deadlines, with room to spare.
TIMEOUT = pytest.mark.timeout(int(current_profile().deadline_s * 3))


def hostile(profile: Profile, seed: int = SEED, *, rate: float | None = None) -> FaultPlan:
    """Every kind of fault, each at the profile's rate (or ``rate``), on every request, plus
    latency."""
    p = profile.fault_rate if rate is None else rate
    return FaultPlan(
        latency_s=profile.latency_s,
        reset_before=p,
        drop_after=p,
        throttle=p,
        server_error=p,
        seed=seed,
    )


def faults_injected(counts: dict[str, int]) -> dict[str, int]:
    return {kind: counts[kind] for kind in FAULT_KINDS} | {"requests": counts["requests"]}


def chaos_settings(project: Project, *, max_receive_count: int = 10) -> None:
    """Short timeouts so that a killed process's messages come back within seconds."""
    project.queue_settings.update(visibility_timeout=3, max_receive_count=max_receive_count)
    project.worker_settings.update(
        wait_time_s=1, grace_period_s=2, backoff_base_s=0.2, backoff_max_s=1.0
    )


def via(proxy_url: str) -> dict[str, str]:
    """The environment that points a CLI process at the proxy instead of the endpoint."""
    return {
        "NORTHMIGRATE_AWS__ENDPOINT_URL": proxy_url,
        "NORTHMIGRATE_AWS__READ_TIMEOUT": "20",
        "NORTHMIGRATE_AWS__CONNECT_TIMEOUT": "2",
    }


# -- processes ----------------------------------------------------------------------------


@dataclass
class Run:
    """One CLI process, its output in files (an unread pipe would stall a chatty process)."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    killed: bool = False

    def summary(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stdout.read_text() or "null")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def tail(self) -> str:
        return self.stderr.read_text(errors="replace")[-1500:]


def start(project: Project, args: list[str], env: dict[str, str], tag: str) -> Run:
    logs = project.root / "logs"
    logs.mkdir(exist_ok=True)
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "northmigrate", *args, "--output", "json"],
            cwd=project.root,
            env=cli_env(env),
            stdout=stdout,
            stderr=stderr,
        )
    return Run(process, out, err)


def kill(run: Run) -> None:
    if run.process.poll() is None:
        run.process.send_signal(signal.SIGKILL)
        run.killed = True
    run.process.wait(timeout=30)


@dataclass
class FleetReport:
    kills: int = 0
    starts: int = 0
    exits: Counter[int] = field(default_factory=Counter)  # exit codes of the unkilled runs
    summaries: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0


class Fleet:
    """``size`` copies of a command (``worker --until-empty``), each restarted when it dies
    before it is done; SIGKILLs at seeded random moments within ``kill_window_s``. Done when
    every copy exited 0 on its own."""

    def __init__(
        self,
        project: Project,
        args: list[str],
        env: dict[str, str],
        *,
        size: int,
        kills: int,
        kill_window_s: float,
        rng: random.Random,
        deadline_s: float,
    ) -> None:
        self.project = project
        self.args = args
        self.env = env
        self.size = size
        self.rng = rng
        self.deadline_s = deadline_s
        self.kill_at = sorted(rng.uniform(0.5, kill_window_s) for _ in range(kills))
        self.report = FleetReport()

    def _start(self, slot: int) -> Run:
        self.report.starts += 1
        tag = f"{self.args[0]}-{slot}-{self.report.starts}"
        return start(self.project, self.args, self.env, tag)

    def run(self) -> FleetReport:
        began = time.monotonic()
        slots: list[Run | None] = [self._start(i) for i in range(self.size)]
        pending_kills = list(self.kill_at)
        try:
            while any(run is not None for run in slots):
                elapsed = time.monotonic() - began
                assert elapsed < self.deadline_s, self._stuck(slots)
                if pending_kills and elapsed >= pending_kills[0]:
                    pending_kills.pop(0)
                    live = [i for i, r in enumerate(slots) if r and r.process.poll() is None]
                    if live:
                        victim = self.rng.choice(live)
                        run = slots[victim]
                        assert run is not None
                        kill(run)
                        self.report.kills += 1
                        slots[victim] = self._start(victim)
                for i, run in enumerate(slots):
                    if run is None or run.process.poll() is None:
                        continue
                    code = run.process.returncode
                    self.report.exits[code] += 1
                    summary = run.summary()
                    if summary is not None:
                        self.report.summaries.append(summary)
                    # an AWS error that outlasted the retries (exit 3): start another
                    slots[i] = None if code == 0 else self._start(i)
                time.sleep(0.05)
        finally:
            for run in slots:
                if run is not None:
                    kill(run)
        self.report.duration_s = time.monotonic() - began
        return self.report

    def _stuck(self, slots: list[Run | None]) -> str:
        tails = [f"--- {r.stderr.name}\n{r.tail()}" for r in slots if r is not None]
        return f"the fleet did not finish within {self.deadline_s} s\n" + "\n".join(tails)


def run_killed_then_rerun(
    project: Project,
    args: list[str],
    env: dict[str, str],
    *,
    kills: int,
    rng: random.Random,
    mark: Callable[[], int],
    step: int,
    kill_delay_s: float,
    deadline_s: float,
) -> tuple[list[Run], Run]:
    """Run a command ``kills`` times, each killed by SIGKILL at a random moment (up to
    ``kill_delay_s``) after ``mark()`` (e.g. a queue's depth) rose by ``step``, then once
    more to its end. Returns the runs meant to be killed (one that finished first is not
    ``killed``) and the last one."""
    killed: list[Run] = []
    for n in range(kills):
        before = mark()
        run = start(project, args, env, f"{args[0]}-k{n}")
        began = time.monotonic()
        while run.process.poll() is None and mark() < before + step:
            assert time.monotonic() - began < deadline_s, run.tail()
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, kill_delay_s))
        kill(run)
        killed.append(run)
    last = start(project, args, env, f"{args[0]}-final")
    try:
        last.process.wait(timeout=deadline_s)
    finally:
        kill(last)
    return killed, last


def visible(sqs: Any, url: str) -> Callable[[], int]:
    """A probe of a queue's visible depth (for ``mark``)."""

    def probe() -> int:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    return probe


# -- what is where ------------------------------------------------------------------------


def wait_until_settled(project: Project, *names: str, timeout: float = 120.0) -> None:
    """Wait until no message of these queues is in flight (a killed process's messages come
    back when their visibility lapses) or delayed."""
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            depth = project.depth(name)
            if depth["in_flight"] == 0 and depth["delayed"] == 0:
                break
            assert time.monotonic() < deadline, f"{name} still holds {depth}"
            time.sleep(0.25)


def record_ids(messages: list[dict[str, Any]]) -> Counter[str]:
    """Record id of every envelope among the messages, with how many messages carry it."""
    ids: Counter[str] = Counter()
    for message in messages:
        ids[json.loads(message["Body"])["record_id"]] += 1
    return ids


def peek_ids(project: Project, name: str | None = None) -> Counter[str]:
    """``record_ids`` of every message of a queue, consuming none: received (hidden for a
    while), then made visible again at once."""
    sqs = project.client("sqs")
    url = project.queue_url(name)
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            seen.setdefault(message["MessageId"], message)
            handles.append(message["ReceiptHandle"])
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return record_ids(list(seen.values()))


def runs_log(project: Project) -> list[dict[str, Any]]:
    path = project.root / "runs.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def figures(name: str, data: dict[str, Any]) -> None:
    """The figures of a run: on stdout (``pytest -s``) and in $NORTHMIGRATE_CHAOS_FIGURES."""
    line = json.dumps({"scenario": name, **data}, sort_keys=True)
    print(f"\nCHAOS {line}")
    target = os.environ.get("NORTHMIGRATE_CHAOS_FIGURES")
    if target:
        with open(target, "a") as out:
            out.write(line + "\n")
