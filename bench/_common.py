"""Shared benchmark plumbing: an emulator, latency proxies in front of it (+20 ms, +80 ms),
child processes measured for wall time, client CPU, peak RSS and the emulator's CPU over the
same window, and a table printed against the baselines."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from rich.console import Console
from rich.table import Table

# The emulator launcher is test support, not part of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from latency import LatencyProxy
from support.emulators import start_ministack

SLICES = 4
# The emulator's process id, handed to every measured child: each child reads the emulator's
# CPU over the same window as its own (Linux /proc; elsewhere the column shows "—").
EMULATOR_PID_ENV = "NM_BENCH_EMULATOR_PID"
_emulator_pid: int | None = None
CREDS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def sqs(endpoint: str, pool: int = 10) -> Any:
    config = botocore.config.Config(max_pool_connections=pool, retries={"mode": "standard"})
    return boto3.client("sqs", endpoint_url=endpoint, config=config, **CREDS)


@contextmanager
def endpoints(*latencies_ms: float) -> Iterator[dict[str, str]]:
    """{"loopback": url, "+N ms": url, ...} for one ministack process: one latency proxy
    (bench/latency.py) in front of it for each latency over 0."""
    global _emulator_pid
    with start_ministack() as emulator, ExitStack() as stack:
        urls = {"loopback": emulator.url}
        for ms in latencies_ms:
            if ms > 0:
                proxy = stack.enter_context(LatencyProxy(emulator.url, ms / 1000))
                urls[f"+{ms:g} ms"] = proxy.url
        _emulator_pid = emulator.process.pid
        try:
            yield urls
        finally:
            _emulator_pid = None


def latencies(text: str) -> list[float]:
    """``--latency-ms 20,80`` as [20.0, 80.0]."""
    return [float(part) for part in text.split(",") if part.strip()]


@dataclass
class Measure:
    contender: str
    network: str
    records: int
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    emulator_cpu_s: float | None = None  # the emulator's CPU over the same window

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def emulator_cores(self) -> float | None:
        """How much of a core the emulator used while this contender ran."""
        if self.emulator_cpu_s is None or not self.seconds:
            return None
        return self.emulator_cpu_s / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.records * 1e6 if self.records else 0.0


def run_child(script: Path, args: list[str], contender: str, network: str) -> Measure:
    """Run one contender in its own process; its CPU and peak RSS are its own."""
    env = {**os.environ, "PYTHONPATH": str(script.parent.parent)}
    if _emulator_pid is not None:
        env[EMULATOR_PID_ENV] = str(_emulator_pid)
    process = subprocess.Popen(
        [sys.executable, str(script), "--child", *args], stdout=subprocess.PIPE, env=env, text=True
    )
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"{contender} on {network} failed with exit {process.returncode}")
    data = json.loads(out.strip().splitlines()[-1])
    return Measure(
        contender,
        network,
        data["records"],
        data["seconds"],
        data["cpu_s"],
        data["peak_rss_mb"],
        data.get("emulator_cpu_s"),
    )


@dataclass(frozen=True)
class Mark:
    """The start of a measured window: the wall clock, this process's CPU, the emulator's."""

    wall: float
    cpu: float
    emulator: float | None

    @classmethod
    def now(cls) -> Mark:
        return cls(time.perf_counter(), cpu_now(), emulator_cpu())

    def until_now(self) -> tuple[float, float, float | None]:
        """(seconds, CPU seconds, the emulator's CPU seconds) since this mark."""
        emulator = emulator_cpu()
        spent = None if emulator is None or self.emulator is None else emulator - self.emulator
        return time.perf_counter() - self.wall, cpu_now() - self.cpu, spent


def child_report(records: int, mark: Mark) -> None:
    """Print what a child measured from ``mark`` to now."""
    report(records, *mark.until_now())


def report(
    records: int,
    seconds: float,
    cpu_s: float,
    emulator_cpu_s: float | None,
    peak_rss_mb: float | None = None,
) -> None:
    """Print a child's measure (the last line of its stdout) for :func:`run_child`; the peak
    RSS is the child's own unless given (e.g. that of the processes it ran)."""
    if peak_rss_mb is None:
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "records": records,
                "seconds": seconds,
                "cpu_s": cpu_s,
                "peak_rss_mb": peak_rss_mb,
                "emulator_cpu_s": emulator_cpu_s,
            }
        )
    )


def emulator_cpu() -> float | None:
    """The emulator's CPU seconds so far (user and system, all its threads), when this
    process was told its id and can read it; else None."""
    pid = os.environ.get(EMULATOR_PID_ENV)
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def onboarding_messages(count: int, seed: int) -> list[Any]:
    """``count`` eligible onboarding records as the enqueue sends them (OutMessage: body,
    attributes, size)."""
    from northmigrate.examples.onboarding import migration
    from northmigrate.records.sample import SampleGenerator
    from northmigrate.records.validation import Validator
    from northmigrate.sources import SourceItem

    gen = SampleGenerator(seed=seed)
    validator = Validator(migration, max_message_size=262_144, run_id="bench")
    messages = []
    for n in range(1, count + 1):
        record = gen.record(n)
        record["status"] = "approved"
        checked = validator.check(SourceItem(n, data=record))
        assert checked.message is not None
        messages.append(checked.message)
    return messages


def send_all(client: Any, url: str, messages: list[Any]) -> None:
    """Send messages (anything with ``body``, ``attributes`` and ``size``) in batches."""
    from northmigrate.aws.sqs.batching import batches

    for batch in batches(messages, 262_144):
        entries = [
            {"Id": str(i), "MessageBody": m.body, "MessageAttributes": m.attributes}
            for i, m in enumerate(batch)
        ]
        result = client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not result.get("Failed"), result["Failed"]


def depth(client: Any, url: str) -> int:
    """Messages in the queue: visible plus in flight."""
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def discard_down_to(client: Any, url: str, wanted: int) -> None:
    """Delete messages (untimed set-up) until the queue holds ``wanted``."""
    excess = depth(client, url) - wanted
    while excess > 0:
        got = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, excess), WaitTimeSeconds=1
        ).get("Messages", [])
        if got:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ]
            client.delete_message_batch(QueueUrl=url, Entries=entries)
            excess -= len(got)


def timed_slices(
    client: Any, url: str, total: int, sample: int, run_slice: Callable[[int], None]
) -> tuple[int, float, float, float | None]:
    """Time a slow baseline on ``sample`` of a queue of ``total`` messages: (count, seconds,
    CPU seconds, the emulator's CPU seconds).

    An emulator's cost per call can grow with the depth of the queue (ministack scans it),
    so the baseline is not timed on a smaller queue of its own: it runs ``run_slice(n)`` in
    slices at the midpoints of the depths a contender that drains all ``total`` goes
    through (7/8, 5/8, 3/8 and 1/8 full); before each slice the queue is brought down to
    that depth, untimed.
    """
    # A slice never takes more than the depth it starts at (the last is 1/8 full).
    per_slice = max(1, min(sample // SLICES, total // (2 * SLICES)))
    spent: list[tuple[float, float, float | None]] = []
    for n in range(SLICES):
        discard_down_to(client, url, total - (2 * n + 1) * total // (2 * SLICES))
        mark = Mark.now()
        run_slice(per_slice)
        spent.append(mark.until_now())
    emulator = [e for _, _, e in spent]
    return (
        per_slice * SLICES,
        sum(s for s, _, _ in spent),
        sum(c for _, c, _ in spent),
        None if None in emulator else sum(e for e in emulator if e is not None),
    )


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def print_table(
    title: str,
    rows: list[Measure],
    baseline_of: Callable[[Measure], Measure | None],
    unit: str = "record",
) -> None:
    table = Table(title=title, title_justify="left")
    for column in (
        "network",
        "contender",
        f"{unit}s",
        f"{unit}s/s",
        "x baseline",
        f"CPU µs/{unit}",
        "emulator cores",
        "peak RSS MB",
    ):
        table.add_column(
            column, justify="right" if column not in ("network", "contender") else "left"
        )
    for m in rows:
        base = baseline_of(m)
        ratio = f"{m.rate / base.rate:.1f}x" if base and base is not m else "—"
        table.add_row(
            m.network,
            m.contender,
            str(m.records),
            f"{m.rate:,.0f}",
            ratio,
            f"{m.cpu_us:,.0f}",
            "—" if m.emulator_cores is None else f"{m.emulator_cores:.2f}",
            f"{m.peak_rss_mb:.0f}",
        )
    Console(width=max(Console().width, 110)).print(table)


def print_kept(title: str, pairs: list[tuple[Measure, Measure]]) -> None:
    """For each network: northmigrate's rate, the share of its loopback rate it keeps, its
    CPU per unit against the plain loop's on the same network, and the emulator's share of a
    core over the same run (pairs: (northmigrate, plain loop), loopback first)."""
    table = Table(title=title, title_justify="left")
    columns = ("network", "rate/s", "share of loopback", "CPU µs", "x plain loop CPU")
    for column in (*columns, "emulator cores"):
        table.add_column(column, justify="left" if column == "network" else "right")
    home = pairs[0][0]
    for nm, plain in pairs:
        table.add_row(
            nm.network,
            f"{nm.rate:,.0f}",
            f"{nm.rate / home.rate:.2f}" if home.rate else "—",
            f"{nm.cpu_us:,.0f}",
            f"{nm.cpu_us / plain.cpu_us:.2f}x" if plain.cpu_us else "—",
            "—" if nm.emulator_cores is None else f"{nm.emulator_cores:.2f}",
        )
    Console(width=max(Console().width, 110)).print(table)


def load() -> str:
    """The machine's load averages (1, 5, 15 min), to print beside the figures."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {os.uname().machine}, {load()}"
    )
