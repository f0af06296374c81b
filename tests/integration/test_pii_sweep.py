"""Seed known sensitive values, run every command of a migration, grep every output for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Project

from northmigrate.examples.onboarding import SENSITIVE
from northmigrate.redact import sensitive_values

pytestmark = pytest.mark.integration


def test_no_sensitive_value_reaches_any_output_unless_asked(
    project: Project, tmp_path: Path
) -> None:
    project.options["outage_regions"] = ["ON", "BC"]  # some records fail, retry and dead-letter
    project.options["unsupported_business_types"] = ["llc"]
    project.write_config()
    source = tmp_path / "records.jsonl"
    project.run("sample", "--count", "60", "--seed", "9", "--out", str(source), check=True)
    lines = source.read_text().splitlines()
    secrets: set[str] = set()
    for line in lines:
        secrets |= sensitive_values(json.loads(line), SENSITIVE)
    # a broken record whose bad values must not be echoed back in its rejection
    broken = json.loads(lines[0])
    broken["application_id"] = "APP-9999999"
    broken["owners"][0]["tax_id"] = "98765432"
    broken["owners"][0]["date_of_birth"] = "1980-13-45"
    source.write_text("\n".join([*lines, json.dumps(broken)]) + "\n")
    secrets |= {"98765432", "1980-13-45"}
    secrets = {s for s in secrets if len(s) >= 6}  # names like "Ava" are too short to grep for
    assert len(secrets) > 100

    outputs: list[str] = []

    def run(*args: str) -> None:
        result = project.run(*args)
        assert result.returncode in (0, 1), f"{args}: {result.stderr}"
        outputs.extend([result.stdout, result.stderr])

    run("provision")
    for fmt in ("table", "json"):
        run("validate", str(source), "--output", fmt)
    run("--debug", "enqueue", str(source), "--output", "json")
    run("--debug", "worker", "--until-empty", "--concurrency", "4", "--output", "json")
    for fmt in ("table", "json"):
        run("dlq", "inspect", "--output", fmt)
        run("status", "--once", "--output", fmt)
        run("reconcile", str(source), "--output", fmt)
    run("dlq", "inspect", "--export", "dead.jsonl")
    run("dlq", "redrive", "--dry-run", "--output", "json")
    outputs.append((project.root / "dead.jsonl").read_text())

    everything = "\n".join(outputs)
    assert "PermanentError" in everything and "TargetUnavailable" in everything
    leaked = sorted(s for s in secrets if s in everything)
    assert leaked == [], f"sensitive values in outputs: {leaked[:5]}"

    # the positive control: asked for, they are there
    shown = project.run("dlq", "inspect", "--show-pii", "--output", "json").stdout
    assert any(s in shown for s in secrets)
