"""Every benchmark script starts: its imports of the library resolve and its options parse.

Running them, on a few hundred records, is ``tests/integration/test_bench.py`` (``make
volume``); this is the check ``make test`` can afford, so that a change to the library
cannot leave a script that no longer imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_the_scripts_are_found() -> None:
    assert {"enqueue.py", "redrive.py", "worker.py", "guard.py"} <= set(SCRIPTS)


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
