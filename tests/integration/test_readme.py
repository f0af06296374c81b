"""The README's quickstart, run line by line as a new user would, on the embedded endpoint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import REPO, cli_env

pytestmark = pytest.mark.integration


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the quickstart has no sh block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_every_quickstart_command_works(tmp_path: Path, moto_endpoint: str) -> None:
    commands = quickstart_commands()
    assert commands[0].startswith("northmigrate local")  # the tests' endpoint stands in for it
    shutil.copytree(REPO / "config", tmp_path / "config")
    name = f"readme-{uuid.uuid4().hex[:8]}"
    env = cli_env(
        {
            # the same endpoint as `northmigrate local`, on the tests' port; own queue and table
            "NORTHMIGRATE_AWS__ENDPOINT_URL": moto_endpoint,
            "NORTHMIGRATE_QUEUE__NAME": name,
            "NORTHMIGRATE_MIGRATION__OPTIONS__TABLE": f"{name}-table",
        }
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # the installed northmigrate
    outputs = {}
    for command in commands[1:]:
        result = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, command
        outputs[command] = result.stdout
    assert (tmp_path / "records.jsonl").is_file() and (tmp_path / "rejects.jsonl").is_file()
    # the demo's story: a bug dead-letters some records, inspect says why, the fix ships,
    # redrive, and reconcile accounts for every record with nothing left dead-lettered
    inspected = outputs["northmigrate dlq inspect"]
    assert "does not accept business_type 'nonprofit'" in inspected
    dead = int(re.search(r"visible\s*│\s*(\d+)", inspected).group(1))  # type: ignore[union-attr]
    assert dead > 0
    moved = outputs["northmigrate dlq redrive"]
    assert re.search(rf"moved\s*│\s*{dead}\b", moved), moved
    reconciled = outputs["northmigrate reconcile records.jsonl"]
    assert "every record is accounted for" in reconciled
    assert re.search(r"dead-lettered\s*│\s*0\b", reconciled), reconciled
