"""No link in the plugin's folder is ever followed into the Lambda package: a symbolic link to
a file or a directory, at any depth, pointing inside or outside the tree (a dotfile, a secret
elsewhere, a dangling name, a loop), met by the module walk or matched by a
``deploy.include`` glob, is skipped; a plugin module that is itself a link is refused."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from northmigrate.deploy.package import BuildOptions, build_package, plugin_sources
from northmigrate.errors import InputError

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
INCLUDES = ("shop/**/*", "shop/*", "shop/*/*", "shop/*/*/*", "shop/**/*.json", "shop/**/*.py")
TARGETS = [
    "dotfile",
    "outside-file",
    "outside-dir",
    "inside-file",
    "inside-dir",
    "dangling",
    "loop",
]
PLACES = ["shop", "shop/data", "shop/sub", "shop/sub/deeper"]


def _tree(root: Path) -> Path:
    """A plugin package ``shop`` (modules and data at three depths), a ``.env`` beside it
    and a folder of secrets outside; returns the working directory."""
    cwd, outside = root / "project", root / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.json").write_text(f'{{"k": "{SECRET}"}}\n')
    (outside / "dir" / "stolen.py").write_text(f"KEY = {SECRET!r}\n")
    (outside / "dir" / "stolen.json").write_text(f'"{SECRET}"\n')
    for place in PLACES:
        (cwd / place).mkdir(parents=True, exist_ok=True)
        (cwd / place / "__init__.py").write_text("")
        (cwd / place / "real.json").write_text('{"ok": 1}\n')
    (cwd / ".env").write_text(SECRET + "\n")
    (cwd / "shop" / "sub" / "mod.py").write_text("X = 1\n")
    return cwd


def _link(cwd: Path, place: str, name: str, target: str) -> Path:
    at = cwd / place / name
    to = {
        "dotfile": cwd / ".env",
        "outside-file": cwd.parent / "outside" / "secret.json",
        "outside-dir": cwd.parent / "outside" / "dir",
        "inside-file": cwd / "shop" / "sub" / "mod.py",
        "inside-dir": cwd / "shop" / "sub",
        "dangling": cwd / "nothing-here",
        "loop": cwd / place,
    }[target]
    os.symlink(to, at)
    return at


def _has_link(cwd: Path, arcname: str) -> bool:
    parts = Path(arcname).parts
    return any((cwd / Path(*parts[:n])).is_symlink() for n in range(1, len(parts) + 1))


links = st.lists(
    st.tuples(
        st.sampled_from(PLACES),
        st.sampled_from(["env.json", "data.json", "linked.py", "linkdir"]),
        st.sampled_from(TARGETS),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda t: (t[0], t[1]),
)


@given(links, st.lists(st.sampled_from(INCLUDES), min_size=1, max_size=3, unique=True))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_link_anywhere_is_followed_into_the_package(
    planted: list[tuple[str, str, str]], include: list[str]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="nm-links-"))
    try:
        cwd = _tree(root)
        for place, name, target in planted:
            _link(cwd, place, name, target)
        files = plugin_sources("shop.sub.mod:migration", cwd, include=tuple(include))
        names = [arcname for arcname, _ in files]
        assert "shop/sub/mod.py" in names  # the real modules still go in
        for arcname, path in files:
            assert not _has_link(cwd, arcname), arcname
            assert SECRET.encode() not in path.read_bytes(), arcname
    finally:
        shutil.rmtree(root)


def test_the_reported_link_to_the_env_file_is_left_out_of_the_zip(tmp_path: Path) -> None:
    cwd = _tree(tmp_path)
    (cwd / "data").mkdir()
    (cwd / "data" / "rates.json").write_text("{}\n")
    (cwd / "data" / "env.json").symlink_to(Path("..") / ".env")
    options = BuildOptions("shop.sub.mod:migration", arch="host", cwd=cwd, include=("data/*.json",))
    built = build_package(options, tmp_path / "a.zip")
    with zipfile.ZipFile(built.path) as archive:
        assert "data/rates.json" in archive.namelist()
        assert "data/env.json" not in archive.namelist()
        assert all(SECRET.encode() not in archive.read(n) for n in archive.namelist())


def test_an_include_that_matches_only_links_says_so(tmp_path: Path) -> None:
    cwd = _tree(tmp_path)
    (cwd / "shop" / "env.json").symlink_to(cwd / ".env")
    with pytest.raises(InputError, match="matches no file") as caught:
        plugin_sources("shop.sub.mod:migration", cwd, include=("shop/env.json",))
    assert "symbolic links" in (caught.value.hint or "")


@pytest.mark.parametrize("package", [True, False])
def test_a_plugin_module_that_is_a_link_is_refused(tmp_path: Path, package: bool) -> None:
    cwd = _tree(tmp_path)
    if package:
        (cwd / "mig").symlink_to(cwd.parent / "outside" / "dir")
        (cwd.parent / "outside" / "dir" / "__init__.py").write_text("")
    else:
        (cwd / "mig.py").symlink_to(cwd.parent / "outside" / "dir" / "stolen.py")
    with pytest.raises(InputError, match="is a symbolic link") as caught:
        plugin_sources("mig:migration", cwd)
    assert caught.value.exit_code == 2
