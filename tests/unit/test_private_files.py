"""Files that hold records are the owner's alone, and nothing planted at their path is followed.

Every writer (``--rejects FILE``, ``dlq inspect --export FILE``, ``destroy --export FILE``)
goes through ``northmigrate.privatefile``: these tests run each trick against each writer.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from northmigrate import privatefile
from northmigrate.dlq.export import ExportWriter
from northmigrate.errors import InputError
from northmigrate.privatefile import open_private, private_dir, read_private, replace_private
from northmigrate.records.rejects import RejectsWriter

REPO = Path(__file__).resolve().parents[2]
WRITERS: dict[str, Callable[[Path], Any]] = {"rejects": RejectsWriter, "export": ExportWriter}
VICTIM_TEXT = "someone else's data\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    path.chmod(0o644)
    return path


def assert_untouched(victim: Path) -> None:
    assert victim.read_text() == VICTIM_TEXT
    assert mode(victim) == 0o644


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_symlink_at_the_path_is_refused_and_its_target_untouched(
    writer: Callable[[Path], Any], victim: Path, tmp_path: Path
) -> None:
    link = tmp_path / "out.jsonl"
    link.symlink_to(victim)
    with pytest.raises(InputError) as caught:
        writer(link)
    assert str(link) in str(caught.value) and "symbolic link" in str(caught.value)
    assert caught.value.exit_code == 2
    assert_untouched(victim)
    assert link.is_symlink()


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_dangling_symlink_is_refused_and_nothing_is_created(
    writer: Callable[[Path], Any], tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere" / "created.txt"
    target.parent.mkdir()
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    with pytest.raises(InputError, match="symbolic link"):
        writer(link)
    assert not target.exists()


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_hard_link_to_another_file_is_refused(
    writer: Callable[[Path], Any], victim: Path, tmp_path: Path
) -> None:
    link = tmp_path / "out.jsonl"
    os.link(victim, link)
    with pytest.raises(InputError, match="hard link"):
        writer(link)
    assert_untouched(victim)


def test_a_file_of_another_user_is_refused(victim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = os.stat(victim).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(InputError, match="belongs to another user"):
        RejectsWriter(victim)
    assert_untouched(victim)


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_fifo_is_refused_without_hanging(writer: Callable[[Path], Any], tmp_path: Path) -> None:
    fifo = tmp_path / "out.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            writer(fifo)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert outcome, "opening a FIFO hung"
    assert isinstance(outcome[0], InputError) and "FIFO" in str(outcome[0])


def test_a_fifo_swapped_in_after_the_check_is_refused_on_the_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "out.jsonl"

    def swap(*args: Any) -> bool:
        os.mkfifo(fifo)  # the name looked free when it was checked
        return True

    monkeypatch.setattr(privatefile, "_check_name", swap)
    with pytest.raises(InputError, match="FIFO"):
        open_private(fifo, "rejects file")


@pytest.mark.parametrize("path", ["/dev/null", "."])
def test_devices_and_directories_are_refused(path: str) -> None:
    with pytest.raises(InputError, match=r"device|directory"):
        open_private(Path(path), "export file")


def test_an_existing_file_is_truncated_and_made_private(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    path.write_text("old\n" * 10)
    path.chmod(0o644)
    with open_private(path, "rejects file") as handle:
        assert mode(path) == 0o600  # before a byte is written
        handle.write("new\n")
    assert path.read_text() == "new\n" and mode(path) == 0o600


def test_a_new_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with ExportWriter(tmp_path / "dlq.jsonl") as writer:
            writer.write({"a": 1})
    finally:
        os.umask(old)
    assert mode(tmp_path / "dlq.jsonl") == 0o600


def test_append_keeps_what_is_there_with_the_same_checks(victim: Path, tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    path.write_text("first\n")
    path.chmod(0o644)
    with open_private(path, "rejects file", append=True) as handle:
        handle.write("second\n")
    assert path.read_text() == "first\nsecond\n" and mode(path) == 0o600
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        open_private(link, "rejects file", append=True)
    assert_untouched(victim)


def test_a_symlinked_parent_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    with open_private(tmp_path / "via" / "out.jsonl", "export file") as handle:
        handle.write("x\n")
    assert (real / "out.jsonl").read_text() == "x\n"


def test_private_directories_and_atomic_replacement(victim: Path, tmp_path: Path) -> None:
    state = private_dir(tmp_path / "a" / "b", "state directory")
    assert mode(tmp_path / "a") == mode(state) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    assert mode(private_dir(loose, "state directory")) == 0o700
    (tmp_path / "linked").symlink_to(victim.parent)
    with pytest.raises(InputError, match="symbolic link"):
        private_dir(tmp_path / "linked", "state directory")
    # a link planted at the file's name is replaced, never written through
    target = state / "s.json"
    target.symlink_to(victim)
    replace_private(target, b"{}", "resume state")
    assert not target.is_symlink() and target.read_bytes() == b"{}" and mode(target) == 0o600
    assert_untouched(victim)
    assert sorted(p.name for p in state.iterdir()) == ["s.json"]  # no temporary file left
    assert read_private(target, "resume state") == b"{}"
    assert read_private(state / "none.json", "resume state") is None
    (state / "link.json").symlink_to(victim)
    with pytest.raises(InputError, match=r"refusing to read .*symbolic link"):
        read_private(state / "link.json", "resume state")


def test_the_cli_refuses_a_symlinked_rejects_file_with_one_line_and_exit_2(
    victim: Path, tmp_path: Path
) -> None:
    config = tmp_path / "northmigrate.toml"
    config.write_text(
        '[queue]\nname = "q"\n[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
    )
    source = tmp_path / "records.jsonl"
    source.write_text(json.dumps({"application_id": "A-1"}) + "\n")
    link = tmp_path / "rejects.jsonl"
    link.symlink_to(victim)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORTHMIGRATE_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "northmigrate", "--config", str(config), "validate", str(source),
         "--rejects", str(link)],
        capture_output=True, text=True, cwd=tmp_path, env=env | {"PYTHONPATH": str(REPO)},
        check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert str(link) in lines[0] and "symbolic link" in lines[0]
    assert_untouched(victim)
