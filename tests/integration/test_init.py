"""``northmigrate init`` as a new user runs it: the starter config passes ``doctor`` on the
embedded endpoint, and the plugin skeleton's own test passes, and it migrates records."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import Project, cli_env, run_cli

pytestmark = pytest.mark.integration


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    first = run_cli(tmp_path, ["init"])
    assert first.returncode == 0, first.stderr
    assert "wrote northmigrate.toml" in first.stdout
    (tmp_path / "northmigrate.toml").write_text("# mine\n")
    again = run_cli(tmp_path, ["init", "--aws"])
    assert again.returncode == 2
    assert "northmigrate.toml already exists; nothing written (pass --force" in again.stderr
    assert (tmp_path / "northmigrate.toml").read_text() == "# mine\n"
    forced = run_cli(tmp_path, ["init", "--aws", "--force", "--output", "json"])
    assert forced.returncode == 0
    assert forced.json()["written"] == [str(tmp_path / "northmigrate.toml")]
    assert "[deploy]" in (tmp_path / "northmigrate.toml").read_text()


def test_the_generated_plugin_test_passes(tmp_path: Path) -> None:
    assert run_cli(tmp_path, ["init", "--plugin", "acme_accounts"]).returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_acme_accounts.py"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "6 passed" in done.stdout


def test_init_output_passes_doctor_and_migrates(project: Project) -> None:
    """init's config and skeleton, pointed at the test's endpoint with the global flag."""
    name = f"plugin_{uuid.uuid4().hex[:8]}"
    (project.root / "northmigrate.toml").unlink()
    project.cli("init", "--plugin", name, check=True)
    flag = ("--endpoint-url", project.endpoint)
    project.cli(*flag, "provision", check=True)
    doctor = project.cli(*flag, "doctor", "--output", "json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    records = project.root / "records.jsonl"
    lines = [
        {"record_id": f"R-{n}", "email": f"p{n}@example.com", "name": f"P {n}", "country": "CA"}
        for n in range(1, 6)
    ]
    records.write_text("".join(json.dumps(line) + "\n" for line in lines))
    enqueued = project.cli_json(*flag, "enqueue", "records.jsonl")
    assert enqueued["enqueued"] == 5
    project.cli(*flag, "worker", "--until-empty", check=True)
    reconciled = project.cli_json(*flag, "reconcile", "records.jsonl")
    assert reconciled["ok"] and reconciled["migrated"] == 5
