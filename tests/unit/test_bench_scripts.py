"""Every benchmark script starts: its imports of the library resolve and its options parse.

Running them, on a few hundred records, is ``tests/integration/test_bench.py`` (``make
volume``); this is the check ``make test`` can afford, so that a change to the library
cannot leave a script that no longer imports.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_the_scripts_are_found() -> None:
    assert {"enqueue.py", "redrive.py", "worker.py", "guard.py", "shards.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "latency.py"])
def test_every_benchmark_script_starts(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def _common() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    return _common


def test_a_window_measures_the_emulators_cpu_beside_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The benchmarks print how much of a core the emulator used while each contender ran
    (ministack answers in one Python process), beside the client's own CPU."""
    common = _common()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        monkeypatch.setenv(common.EMULATOR_PID_ENV, str(spinner.pid))
        mark = common.Mark.now()
        time.sleep(1.0)
        seconds, own_cpu, emulator_s = mark.until_now()
    finally:
        spinner.kill()
        spinner.wait()
    assert emulator_s is not None and own_cpu < 0.5
    # a busy loop, on a machine shared with the suite and a CPU hog: a share of a core (an
    # idle process would show none), never more than one
    assert 0.1 * seconds < emulator_s <= seconds + 0.05
    measure = common.Measure("c", "loopback", 100, seconds, own_cpu, 10.0, emulator_s)
    assert measure.emulator_cores == pytest.approx(emulator_s / seconds)

    monkeypatch.delenv(common.EMULATOR_PID_ENV)
    assert common.Mark.now().until_now()[2] is None
    assert common.Measure("c", "loopback", 100, 1.0, 0.1, 10.0).emulator_cores is None
