"""The demo, run as a user runs it (non-interactively), ends with every record accounted for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli_env

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
