"""What a plugin brings into the Lambda package: its modules and declared data, nothing else.

A plugin package directory in real life holds more than code: a ``.env`` with credentials,
fixture data with personal data, editor and cache directories, links to elsewhere. None of
it may reach the function.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from northmigrate.deploy.package import BuildOptions, build_package, plugin_sources
from northmigrate.errors import InputError

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PERSON = "Jane,Doe,123-45-6789"


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """``shop``: a plugin package with everything a working directory tends to hold."""
    outside = tmp_path / "outside"
    (outside / "lib").mkdir(parents=True)
    (outside / "secret.py").write_text(f"KEY = {SECRET!r}\n")
    (outside / "lib" / "stolen.py").write_text("X = 1\n")
    cwd = tmp_path / "project"
    shop = cwd / "shop"
    for directory in ["sub", "fixtures", "data", ".hidden", "__pycache__", ".venv/lib"]:
        (shop / directory).mkdir(parents=True)
    (shop / "__init__.py").write_text("")
    (shop / "handlers.py").write_text("def migrate(record, ctx):\n    pass\n")
    (shop / "handlers.py").chmod(0o755)
    (shop / "sub" / "__init__.py").write_text("")
    (shop / "sub" / "deep.py").write_text("DEEP = True\n")
    (shop / "sub" / ".secret.py").write_text(f"KEY = {SECRET!r}\n")
    (shop / ".env").write_text(SECRET + "\n")
    (shop / "fixtures" / "people.csv").write_text(PERSON + "\n")
    (shop / "fixtures" / "people.csv").chmod(0o600)
    (shop / "fixtures" / "make_people.py").write_text("ROWS = 3\n")
    (shop / "data" / "rates.json").write_text('{"rate": 1}\n')
    (shop / "data" / ".cache.json").write_text("{}\n")
    (shop / "notes.txt").write_text("todo\n")
    (shop / ".hidden" / "mod.py").write_text("X = 1\n")
    (shop / ".venv" / "lib" / "site.py").write_text("X = 1\n")
    (shop / "__pycache__" / "handlers.cpython-312.pyc").write_bytes(b"junk")
    (shop / "linked_out.py").symlink_to(outside / "secret.py")
    (shop / "lib").symlink_to(outside / "lib")
    (shop / "alias.py").symlink_to(shop / "sub" / "deep.py")
    (shop / "data" / "out.json").symlink_to(outside / "secret.py")
    return cwd


def contents(path: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: info for info in archive.infolist()}


def shop_files(path: Path) -> set[str]:
    return {name for name in contents(path) if name.startswith("shop/")}


def test_only_the_plugins_modules_go_in(plugin: Path, tmp_path: Path) -> None:
    built = build_package(
        BuildOptions("shop.handlers:migration", arch="host", cwd=plugin), tmp_path / "a.zip"
    )
    expected = {
        "shop/__init__.py",
        "shop/handlers.py",
        "shop/sub/__init__.py",
        "shop/sub/deep.py",
        "shop/fixtures/make_people.py",
    }  # not shop/alias.py: a link, even one that stays inside the plugin's tree
    assert shop_files(built.path) == expected
    assert set(built.plugin_files) == expected
    with zipfile.ZipFile(built.path) as archive:
        everything = b"".join(archive.read(name) for name in archive.namelist())
    assert SECRET.encode() not in everything and PERSON.encode() not in everything


def test_declared_data_goes_in_and_still_never_a_dotfile_or_a_link_out(
    plugin: Path, tmp_path: Path
) -> None:
    options = BuildOptions(
        "shop.handlers:migration",
        arch="host",
        cwd=plugin,
        include=("shop/data/*", "shop/*"),
    )
    built = build_package(options, tmp_path / "a.zip")
    listed = shop_files(built.path)
    assert {"shop/data/rates.json", "shop/notes.txt"} <= listed
    assert not {"shop/data/.cache.json", "shop/.env", "shop/data/out.json"} & listed
    assert "shop/fixtures/people.csv" not in listed


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("shop/nothing/*.json", "matches no file"),
        ("../outside/*.py", "outside"),
        ("/etc/passwd", "outside"),
    ],
)
def test_an_include_that_matches_nothing_or_leaves_the_tree_is_refused(
    plugin: Path, pattern: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        plugin_sources("shop.handlers:migration", plugin, include=(pattern,))


def test_zip_entries_are_plain_0644_files_whatever_the_modes_on_disk(
    plugin: Path, tmp_path: Path
) -> None:
    options = BuildOptions(
        "shop.handlers:migration", arch="host", cwd=plugin, include=("shop/data/*.json",)
    )
    built = build_package(options, tmp_path / "a.zip")
    for name, info in contents(built.path).items():
        mode = info.external_attr >> 16
        assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, name
    again = build_package(options, tmp_path / "b.zip")
    assert again.path.read_bytes() == built.path.read_bytes()


def test_a_single_module_plugin_is_that_file(tmp_path: Path) -> None:
    (tmp_path / "mymig.py").write_text("X = 1\n")
    (tmp_path / ".env").write_text(SECRET + "\n")
    (tmp_path / "helper.py").write_text("Y = 2\n")  # not part of the plugin: not imported
    assert plugin_sources("mymig:migration", tmp_path) == [("mymig.py", tmp_path / "mymig.py")]


def test_northmigrate_itself_ships_only_its_modules(tmp_path: Path) -> None:
    built = build_package(
        BuildOptions("northmigrate.examples.onboarding:migration", arch="host", cwd=tmp_path),
        tmp_path / "a.zip",
    )
    ours = [name for name in contents(built.path) if name.startswith("northmigrate/")]
    assert ours and all(name.endswith(".py") for name in ours)
    assert not [name for name in ours if "/." in name or "__pycache__" in name]
    assert built.plugin_files == ()


def test_a_plugin_file_swapped_for_a_link_out_is_left_out(plugin: Path, tmp_path: Path) -> None:
    deep = plugin / "shop" / "sub" / "deep.py"
    deep.unlink()
    os.symlink(tmp_path / "outside" / "secret.py", deep)
    assert "shop/sub/deep.py" not in {a for a, _ in plugin_sources("shop.x:m", plugin)}
