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
    # retries come back within a second: what is checked here is what they print, not when
    project.worker_settings.update({"backoff_base_s": 0.5, "backoff_max_s": 1})
    project.write_config()
    source = tmp_path / "records.jsonl"
    project.cli("sample", "--count", "60", "--seed", "9", "--out", str(source), check=True)
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
        result = project.cli(*args)
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
    shown = project.cli("dlq", "inspect", "--show-pii", "--output", "json").stdout
    assert any(s in shown for s in secrets)


CARELESS = """
from datetime import date
from pydantic import BaseModel
from northmigrate import Migration, MigrationContext, PermanentError


class Person(BaseModel):
    pid: str
    name: str
    dob: date
    tax: str
    code: str
    note: str = ""


def careless(record: Person, ctx: MigrationContext) -> None:
    if record.pid.endswith("1"):
        raise PermanentError(f"cannot write {record!r}")
    raise KeyError(f"tax={record.tax!r} code={record.code!r} dob={record.dob!r}")


def verify(record: Person, ctx: MigrationContext) -> bool:
    raise LookupError(f"no such person {record.name!r} born {record.dob}")


migration = Migration(
    name="people", model=Person, key="pid", handler=careless, verify=verify,
    sensitive=("name", "dob", "tax", "code", "note"),
)
"""


def test_a_careless_plugin_leaks_no_form_of_a_value_through_the_cli(
    project: Project, tmp_path: Path
) -> None:
    """repr'd dates, escaped tabs and quotes, truncated pydantic inputs and short values,
    through the worker, dlq inspect (table, JSON, export) and reconcile."""
    project.write_plugin("people", CARELESS)
    project.plugin = "people:migration"
    project.queue_settings["max_receive_count"] = 1
    project.write_config()
    project.cli("provision", check=True)
    people = [
        {
            "pid": "P-1",
            "name": "TAB\tSSN-6666",
            "dob": "1980-02-03",
            "tax": "111-22-3333",
            "code": "QZ",
        },
        {
            "pid": "P-2",
            "name": 'O\'Brien "Bo"',
            "dob": "1975-12-31",
            "tax": "444-55-6666",
            "code": "K",
        },
        # a model error with pydantic's shortened input_value for a long sensitive note
        {
            "pid": "P-3",
            "name": "Ann",
            "dob": "1990-01-01",
            "tax": "777-88-9999",
            "code": "Q",
            "note": 12345,
        },
    ]
    people[2]["note"] = "SECRETNOTE-" + "x" * 60 + "-ENDSECRET"
    people[2]["dob"] = "SECRETNOTE-" + "y" * 60 + "-ENDSECRET"  # invalid: a long bad date
    source = tmp_path / "people.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in people))
    outputs: list[str] = []

    def run(*args: str) -> None:
        result = project.cli(*args)
        assert result.returncode in (0, 1), f"{args}: {result.stderr}"
        outputs.extend([result.stdout, result.stderr])

    run("validate", str(source), "--output", "json")
    run("validate", str(source))
    run("enqueue", str(source), "--output", "json")
    run("worker", "--until-empty", "--output", "json")
    run("worker", "--until-empty")
    for fmt in ("table", "json"):
        run("dlq", "inspect", "--output", fmt)
        run("reconcile", str(source), "--output", fmt)
    run("dlq", "inspect", "--export", "dead.jsonl")
    outputs.append((project.root / "dead.jsonl").read_text())
    everything = "\n".join(outputs)
    assert "PermanentError" in everything and "KeyError" in everything
    assert "LookupError" in everything  # reconcile's verify failed, with a scrubbed reason
    forms = [
        "TAB\tSSN-6666",
        "TAB\\tSSN-6666",
        "SSN-6666",
        "O'Brien",
        "O\\'Brien",
        '\\"Bo\\"',
        "1980-02-03",
        "1980, 2, 3",
        "1975-12-31",
        "1975, 12, 31",
        "111-22-3333",
        "444-55-6666",
        "777-88-9999",
        "'QZ'",
        "code='K'",
        "SECRETNOTE",
        "ENDSECRET",
    ]
    leaked = [form for form in forms if form in everything]
    assert leaked == [], leaked
    shown = project.cli("dlq", "inspect", "--show-pii", "--output", "json").stdout
    assert "111-22-3333" in shown
