"""The state northmigrate keeps under ``.northmigrate/`` (the last run, a table scan's resume
state) is never written through a link: a link, a file or a dangling link at any component of
its path is refused, exit 2, before a record is sent, and nothing lands where it points."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from boto3.dynamodb.types import TypeSerializer

from northmigrate.errors import InputError
from northmigrate.privatefile import check_dirs, private_dir
from tests.helpers import Project, create_table
from tests.support.samples import write_records


def _link_dir(at: Path, victim: Path) -> None:
    at.symlink_to(victim, target_is_directory=True)


def _dangling(at: Path, victim: Path) -> None:
    at.symlink_to(victim / "not-yet")


def _file(at: Path, victim: Path) -> None:
    at.write_text("not a directory\n")


def _relative_link(at: Path, victim: Path) -> None:
    at.symlink_to(Path("..") / ".." / victim.name if at.parent.name == ".northmigrate" else
                  Path("..") / victim.name)  # fmt: skip


PLANTS: dict[str, Callable[[Path, Path], None]] = {
    "link to a directory": _link_dir,
    "relative link": _relative_link,
    "dangling link": _dangling,
    "a file": _file,
}
COMPONENTS = [".northmigrate", ".northmigrate/resume"]


def _plant(root: Path, component: str, how: str) -> Path:
    victim = root.parent / f"{root.name}-victim"
    victim.mkdir()
    at = root / component
    at.parent.mkdir(parents=True, exist_ok=True)
    PLANTS[how](at, victim)
    return victim


@pytest.mark.parametrize("how", PLANTS)
@pytest.mark.parametrize("component", [*COMPONENTS, ".northmigrate/resume/deeper"])
def test_every_component_is_checked_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, component: str, how: str
) -> None:
    monkeypatch.chdir(tmp_path)
    victim = _plant(tmp_path, component, how)
    target = Path(".northmigrate/resume/deeper/more")
    with pytest.raises(InputError, match="refusing to use") as caught:
        private_dir(target, "resume state directory")
    assert component in str(caught.value)
    with pytest.raises(InputError):
        check_dirs(target, "resume state directory")
    assert list(victim.iterdir()) == []


@pytest.mark.parametrize("how", PLANTS)
def test_enqueue_of_a_file_refuses_a_linked_state_directory_before_sending(
    project: Project, how: str
) -> None:
    write_records(project.root / "in.jsonl", 5)
    project.cli("provision", check=True)
    victim = _plant(project.root, ".northmigrate", how)
    result = project.cli("enqueue", "in.jsonl")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to use state directory" in result.stderr and "Traceback" not in result.stderr
    assert project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}  # nothing sent
    assert list(victim.iterdir()) == []


def _table(project: Project, count: int) -> str:
    name = f"{project.name}-src"
    create_table(project.client("dynamodb"), name, key="application_id")
    write_records(project.root / "recs.jsonl", count)
    ddb, serializer = project.client("dynamodb"), TypeSerializer()
    for line in (project.root / "recs.jsonl").read_text().splitlines():
        item = json.loads(line, parse_float=Decimal)
        ddb.put_item(TableName=name, Item={k: serializer.serialize(v) for k, v in item.items()})
    return name


@pytest.mark.parametrize("resume", [[], ["--resume"]])
@pytest.mark.parametrize("how", ["link to a directory", "dangling link", "a file"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_a_table_scan_refuses_a_linked_state_path_before_sending(
    project: Project, component: str, how: str, resume: list[str]
) -> None:
    name = _table(project, 5)
    project.cli("provision", check=True)
    victim = _plant(project.root, component, how)
    result = project.cli("enqueue", f"dynamodb://{name}", *resume)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to use" in result.stderr and component in result.stderr
    assert project.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert list(victim.iterdir()) == []


def test_a_real_state_directory_still_works(project: Project) -> None:
    name = _table(project, 3)
    project.cli("provision", check=True)
    sent = project.cli_json("enqueue", f"dynamodb://{name}")
    assert sent["read"] == 3 and sent["enqueued"] == sent["eligible"] >= 1
    assert (project.root / ".northmigrate" / "last-run.json").is_file()
    assert list((project.root / ".northmigrate" / "resume").iterdir())
