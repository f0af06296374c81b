"""The demo, run as a user runs it (non-interactively), ends with every record accounted for."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, signal_and_wait

from northmigrate.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_story_and_reconciles(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "northmigrate", "demo", "--dir", str(tmp_path), "--records", "200"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in (
        "1. Provision",
        "3. Validate, enqueue, migrate",
        "4. Look at the dead-letter queue",
        "6. Redrive",
        "7. Reconcile",
    ):
        assert step in out
    assert "Every record accounted for" in out and ", 0 missing." in out
    assert "TargetUnavailable" in out and "PermanentError" in out  # the DLQ showed why
    assert '"tax_id": "***"' in out  # sensitive fields masked in the sample
    assert "Traceback" not in result.stderr
    assert (tmp_path / "northmigrate.toml").is_file() and (tmp_path / "rejects.jsonl").is_file()


def test_the_demo_cleans_up_its_temp_dir_unless_kept(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = cli_env({"TMPDIR": str(temp)})
    command = [sys.executable, "-m", "northmigrate", "demo", "--records", "20"]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Every record accounted for" in result.stdout
    assert list(temp.iterdir()) == []  # no northmigrate-demo-* left behind
    assert "removed" in result.stdout and "--keep" in result.stdout

    workdir = keep_and_stop(command, env, temp, signal.SIGINT)
    assert (workdir / "onboarding.jsonl").is_file()  # kept


def test_the_kept_demo_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = cli_env({"TMPDIR": str(tmp_path)})
    command = [sys.executable, "-m", "northmigrate", "demo", "--records", "20"]
    workdir = keep_and_stop(command, env, tmp_path, signal.SIGTERM)
    assert (workdir / "northmigrate.toml").is_file()


def keep_and_stop(command: list[str], env: dict[str, str], temp: Path, signum: int) -> Path:
    """Run the demo with ``--keep`` until it says how to explore, then send ``signum``: it
    stops the endpoint and exits with the demo's own code (0: nothing missing), however soon
    after the message the signal comes, and keeps its files. Its directory."""
    kept = subprocess.Popen(
        [*command, "--keep"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert kept.stdout is not None
        lines = []
        for line in kept.stdout:  # until it says how to explore
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        (workdir,) = temp.iterdir()
        assert workdir.name.startswith("northmigrate-demo-")
        assert any(str(workdir) in line for line in lines)
    finally:
        out, err = signal_and_wait(kept, signum)
    assert kept.returncode == 0, out + err
    assert "stopping" in err and "Traceback" not in err
    assert workdir.is_dir()
    return workdir


def test_the_demo_shows_what_step_3_is_doing(moto_endpoint: str, tmp_path: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.working: list[tuple[int, str]] = []  # (step, text) while busy

        def step(self, number: int, title: str, why: str) -> None:
            self.steps.append(number)

        def result(self, kind: str, data: Any) -> None:
            pass

        def note(self, text: str) -> None:
            pass

        @contextmanager
        def busy(self, text: str) -> Iterator[Callable[[str], None]]:
            self.working.append((self.steps[-1], text))
            yield lambda now: self.working.append((self.steps[-1], now))

    narrator = Recorder()
    result = run_demo(moto_endpoint, narrator, records=40, directory=tmp_path / "demo")
    assert result.ok
    during_3 = [text for step, text in narrator.working if step == 3]
    assert len(during_3) >= 2  # the spinner's text, then what it is doing
    assert any("sent" in text and "migrated" in text for text in during_3[1:])
