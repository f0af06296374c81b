"""The rejects file is never the source: the same file (device and inode) under any spelling,
through a link, or as the file behind stdin is refused before a byte is read, written or cut,
whether the run would overwrite it (``--force``) or add to it (``--from-line``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, cli_env, run_cli

RECORDS = "".join(
    json.dumps({"application_id": f"A-{n}", "note": n}) + "\n" for n in range(1, 6)
)  # invalid for the example plugin: every one is a reject


def _project(root: Path) -> Path:
    (root / "northmigrate.toml").write_text(
        '[queue]\nname = "q"\n[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
    )
    (root / "sub").mkdir()
    source = root / "src.jsonl"
    source.write_text(RECORDS)
    return source


def _link_to_source(root: Path) -> str:
    (root / "link.jsonl").symlink_to(root / "src.jsonl")
    return "link.jsonl"


# How the same file is named for --rejects (the source read as src.jsonl).
SPELLINGS: dict[str, Callable[[Path], str]] = {
    "same name": lambda root: "src.jsonl",
    "dot slash": lambda root: "./src.jsonl",
    "through a directory": lambda root: "sub/../src.jsonl",
    "absolute": lambda root: str(root / "src.jsonl"),
    "doubled slashes": lambda root: ".//src.jsonl",
    "a link to it": _link_to_source,
}


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("extra", [["--force"], []])
def test_validate_refuses_the_source_as_its_rejects_file(
    tmp_path: Path, spelling: str, extra: list[str]
) -> None:
    source = _project(tmp_path)
    rejects = SPELLINGS[spelling](tmp_path)
    result = run_cli(tmp_path, ["validate", "src.jsonl", "--rejects", rejects, *extra])
    assert result.returncode == 2, result.stdout + result.stderr
    assert source.read_text() == RECORDS  # not emptied, not appended to
    assert "Traceback" not in result.stderr
    if spelling != "a link to it":  # a link is refused as a link, before it is compared
        assert "is the source" in result.stderr and "the same file" in result.stderr


def test_a_source_that_links_to_the_rejects_file_is_refused(tmp_path: Path) -> None:
    source = _project(tmp_path)
    (tmp_path / "alias.jsonl").symlink_to(source)
    result = run_cli(tmp_path, ["validate", "alias.jsonl", "--rejects", "src.jsonl", "--force"])
    assert result.returncode == 2 and "is the source alias.jsonl" in result.stderr
    assert source.read_text() == RECORDS


@pytest.mark.parametrize("rejects", ["src.jsonl", "./src.jsonl"])
def test_stdin_redirected_from_the_rejects_file_is_refused(tmp_path: Path, rejects: str) -> None:
    source = _project(tmp_path)
    with source.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "northmigrate", "validate", "-", "--rejects", rejects,
             "--force"],
            stdin=stdin, capture_output=True, text=True, cwd=tmp_path,
            env=cli_env({"PYTHONPATH": str(REPO)}), timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is the source <stdin>" in result.stderr
    assert source.read_text() == RECORDS


def test_another_file_is_fine(tmp_path: Path) -> None:
    _project(tmp_path)
    (tmp_path / "copy.jsonl").write_text(RECORDS)  # same content, another file
    result = run_cli(tmp_path, ["validate", "src.jsonl", "--rejects", "copy.jsonl", "--force"])
    assert result.returncode == 0, result.stderr  # validate reports rejects, exit 0
    assert len((tmp_path / "copy.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("spelling", ["same name", "through a directory", "absolute"])
def test_enqueue_from_line_refuses_to_append_into_its_own_source(
    project: Project, spelling: str
) -> None:
    source = project.root / "src.jsonl"
    source.write_text(RECORDS)
    (project.root / "sub").mkdir()
    rejects = SPELLINGS[spelling](project.root)
    project.cli("provision", check=True)
    result = project.cli("enqueue", "src.jsonl", "--from-line", "2", "--rejects", rejects)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is the source" in result.stderr
    assert source.read_text() == RECORDS
    assert project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
