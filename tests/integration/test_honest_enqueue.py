"""enqueue as a new user meets it: the rejects file survives a resume, a canary says how to
go on, an empty source is not a success in silence, and status follows the migration across
its resumed parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, write_jsonl

from northmigrate.records.sample import SampleGenerator

pytestmark = pytest.mark.integration


def record(n: int, **changes: Any) -> dict[str, Any]:
    rec = SampleGenerator(seed=n).record(n)
    rec["status"] = "approved"
    rec.update(changes)
    return rec


@pytest.fixture
def provisioned(project: Project) -> Project:
    project.cli("provision", check=True)
    return project


def with_bad_lines(path: Path, count: int, bad_every: int) -> Path:
    """``count`` lines, every ``bad_every``-th one not JSON."""
    lines: list[Any] = [
        "{not json" if n % bad_every == 0 else record(n) for n in range(1, count + 1)
    ]
    return write_jsonl(path, lines)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resuming_appends_to_the_rejects_file(provisioned: Project, tmp_path: Path) -> None:
    project = provisioned
    source = with_bad_lines(tmp_path / "source.jsonl", 20, 4)  # bad lines 4, 8, 12, 16, 20
    first = project.cli_json("enqueue", str(source), "--rejects", "r.jsonl", "--limit", "5")
    assert first["resume_from_line"] == 7
    rejects = project.root / "r.jsonl"
    assert [r["line"] for r in lines_of(rejects)] == [4]
    project.cli_json("enqueue", str(source), "--rejects", "r.jsonl", "--from-line", "7", check=True)
    assert [r["line"] for r in lines_of(rejects)] == [4, 8, 12, 16, 20]


def test_an_existing_rejects_file_is_never_truncated_without_force(
    provisioned: Project, tmp_path: Path
) -> None:
    project = provisioned
    source = with_bad_lines(tmp_path / "source.jsonl", 8, 4)
    rejects = project.root / "r.jsonl"
    project.cli("validate", str(source), "--rejects", "r.jsonl", check=True)
    before = rejects.read_text()
    assert len(before.splitlines()) == 2
    for command in ("validate", "enqueue"):
        refused = project.cli(command, str(source), "--rejects", "r.jsonl")
        assert refused.returncode == 2, refused.stderr
        assert "--force" in refused.stderr and "r.jsonl" in refused.stderr
        assert rejects.read_text() == before  # untouched
    assert project.depth()["visible"] == 0  # refused before sending anything
    forced = project.cli_json("enqueue", str(source), "--rejects", "r.jsonl", "--force")
    assert forced["enqueued"] == 6
    assert [r["line"] for r in lines_of(rejects)] == [4, 8]  # overwritten, not doubled
    empty = project.root / "empty.jsonl"
    empty.write_text("")
    project.cli("validate", str(source), "--rejects", "empty.jsonl", check=True)  # empty: fine


def test_a_canary_says_how_to_continue(provisioned: Project, tmp_path: Path) -> None:
    project = provisioned
    source = write_jsonl(tmp_path / "records.jsonl", [record(n) for n in range(1, 13)])
    result = project.cli("enqueue", str(source), "--limit", "5", "--rejects", "r.jsonl")
    assert result.returncode == 0, result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert "not everything was sent" not in out
    command = f"northmigrate enqueue {source} --from-line 6 --rejects r.jsonl"
    assert f"stopped after 5 (--limit); continue with: {command}" in out
    data = project.cli_json("enqueue", str(source), "--limit", "5", "--concurrency", "2")
    assert data["resume_command"] == (
        f"northmigrate enqueue {source} --from-line 6 --concurrency 2"
    )
    done = project.cli_json("enqueue", str(source), "--from-line", "6", "--rejects", "r.jsonl")
    assert done["enqueued"] == 7 and done["resume_command"] is None


@pytest.mark.parametrize(("name", "text"), [("e.jsonl", ""), ("e.csv", ""), ("h.csv", "a,b\n")])
@pytest.mark.parametrize("command", ["validate", "enqueue"])
def test_an_empty_source_is_warned_about(
    provisioned: Project, tmp_path: Path, name: str, text: str, command: str
) -> None:
    source = tmp_path / name
    source.write_text(text)
    result = provisioned.cli(command, str(source), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert result.json()["read"] == 0
    assert "Warning" in result.stderr and "no records" in result.stderr
    assert str(source) in result.stderr


def test_status_follows_the_migration_across_its_parts(
    provisioned: Project, tmp_path: Path
) -> None:
    project = provisioned
    source = write_jsonl(tmp_path / "records.jsonl", [record(n) for n in range(1, 21)])
    canary = project.cli_json("enqueue", str(source), "--limit", "5")
    project.drain()  # the canary migrated
    status = project.cli_json("status", "--once")
    assert status["progress"]["enqueued"] == 5 and status["progress"]["done"] == 5
    project.cli_json("enqueue", str(source), "--from-line", "6", check=True)
    status = project.cli_json("status", "--once")
    progress = status["progress"]
    assert progress["run_id"] == canary["run_id"]  # one migration run, two parts
    assert (progress["enqueued"], progress["parts"], progress["done"]) == (20, 2, 5)
    assert status["last_run"]["source"] == str(source)
    project.drain()
    assert project.cli_json("status", "--once")["progress"]["done_pct"] == 100.0
    text = project.cli("status", "--once", check=True).stdout
    assert "20 of 20 (100.0%)" in text and "2 parts" in text
    assert "tap" in text
    fresh = project.cli_json("enqueue", str(source))  # the whole source again: a new run
    status = project.cli_json("status", "--once")
    assert status["progress"]["run_id"] == fresh["run_id"]
    assert (status["progress"]["enqueued"], status["progress"]["parts"]) == (20, 1)
