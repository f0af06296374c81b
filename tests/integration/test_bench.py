"""The benchmarks still run: each ``bench/`` script, as ``make bench`` runs it, on a few
hundred records (ministack, started by the script itself, and its latency proxies at 10 and
20 ms, or 5 ms).

The figures at this size say nothing; what is checked is that every script ends with exit
0, prints its table with every contender, and gives a verdict on every target, so that a
change to the library cannot leave a benchmark broken until someone next runs it. ``make
volume`` runs them (a few minutes of both cores, more than ``make test`` can afford);
``make test`` checks that every script starts (``tests/unit/test_bench_scripts.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import require_ministack

# The limits are bounds for a machine busy with the rest of the suite (each script takes
# 10 to 30 s on a quiet one).
pytestmark = [
    pytest.mark.volume,
    pytest.mark.integration,
    pytest.mark.timeout(900),
]

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str) -> str:
    env = {**os.environ, "NORTHMIGRATE_MINISTACK": require_ministack(), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


VERDICT_KEYS = ("verdict", "over_native_max", "over_twice_native_max")


def verdicts(out: str) -> list[str]:
    """PASS or MISS for every target line (text or JSON), in order."""
    found = []
    for line in out.splitlines():
        if line.startswith(("PASS ", "MISS ")):
            found.append(line[:4])
        elif line.startswith("{"):
            data = json.loads(line)
            found += [v for k, v in data.items() if k in VERDICT_KEYS]
    assert set(found) <= {"PASS", "MISS"}, found
    return found


def test_the_enqueue_benchmark_runs() -> None:
    out = run_bench(
        "enqueue.py", "--records", "300", "--latency-ms", "10,20", "--validate-records", "2000"
    )
    for contender in ("per-record loop", "batch loop", "northmigrate", "validate"):
        assert contender in out
    for network in ("loopback", "+10 ms", "+20 ms"):
        assert network in out
    assert "share of loopback" in out and "x plain loop CPU" in out
    assert "emulator cores" in out
    # two on loopback, one through each proxy, the share kept at +20 ms, validate's RSS
    assert len(verdicts(out)) == 6


def test_the_enqueue_cpu_breakdown_runs() -> None:
    out = run_bench("enqueue_cpu.py", "--records", "300", "--rounds", "1")
    for stage in (
        "batch loop",
        "+ envelope and attribute",
        "read and check only",
        "check then send, one thread",
        "enqueue, 16 sender threads",
    ):
        assert stage in out


def test_the_worker_benchmark_runs() -> None:
    out = run_bench("worker.py", "--records", "200", "--latency-ms", "5")
    assert "northmigrate (0 ms handler)" in out and "plain loop (20 ms handler)" in out
    assert len(verdicts(out)) == 4  # two handlers, two networks


def test_the_redrive_benchmark_runs() -> None:
    out = run_bench("redrive.py", "--records", "200", "--latency-ms", "10,20")
    assert "northmigrate" in out and "plain loop" in out
    assert "share of loopback" in out and "x plain loop CPU" in out
    assert '"emulator_cores": ' in out
    # the ratio on three networks, the native maximum through each proxy, twice it at +20 ms
    assert len(verdicts(out)) == 6


def test_the_guard_benchmark_runs() -> None:
    out = run_bench(
        "guard.py", "--records", "120", "--outage-s", "6", "--probe-s", "3", "--limit", "20"
    )
    for scenario in ("bug at the head", "throttling", "outage of 6 s"):
        assert scenario in out
    # none blocked, none burnt by throttling, none burnt by the outage and the tap reopened:
    # the guard's effect is not a matter of speed (the throttled rate is: not asserted here)
    found = verdicts(out)
    assert len(found) == 3 and found[0] == "PASS" and found[2] == "PASS", out


def test_the_shards_benchmark_runs() -> None:
    out = run_bench(
        "shards.py", "--records", "300", "--enqueue-records", "300", "--latency-ms", "20"
    )
    for contender in ("--processes 1", "--processes 2", "enqueue, 1 shard", "enqueue, 2 shards"):
        assert contender in out
    for network in ("loopback", "+20 ms"):
        assert network in out
    assert "emulator cores" in out and "load at the start" in out
    # text and JSON: two shards against one on each network, two processes at +20 ms
    found = verdicts(out)
    assert len(found) == 6, found
    assert '"x_one_shard": ' in out and '"client_cores": ' in out
