"""A plugin from anywhere the import system finds it: an installed distribution brings its
files and its declared dependencies; a module elsewhere on sys.path its modules.

The distributions here are installed by hand into a directory on ``sys.path`` (modules and a
``.dist-info`` with METADATA, RECORD and top_level.txt, as pip writes them), which is what
``importlib.metadata`` and the import system read. tests/integration/test_deploy_plugin_
ministack.py builds and pip-installs a real one and runs it behind a mapping.
"""

from __future__ import annotations

import importlib
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import install_distribution as install

import northmigrate.deploy.package as pkg
from northmigrate.deploy.package import BuildOptions, build_package
from northmigrate.deploy.plugin_source import locate_plugin
from northmigrate.errors import InputError

PLUGIN_INIT = """
import dataclasses

import acme_helpers
from northmigrate.examples.onboarding import migration as example

migration = dataclasses.replace(example, name="acme-" + acme_helpers.NAME)
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``acme-migrations`` (``acme_migrations:migration``) needing ``acme-helpers``."""
    root = tmp_path / "site-packages"
    root.mkdir()
    install(
        root,
        "acme-migrations",
        "1.2.0",
        {
            "acme_migrations/__init__.py": PLUGIN_INIT,
            "acme_migrations/rules/__init__.py": "",
            "acme_migrations/rules/regions.json": '{"ON": "closed"}\n',
        },
        [
            "acme-helpers>=1",
            "northmigrate>=0.1",
            "boto3>=1.30",  # Lambda's runtime has it
            "pytest>=8; extra == 'test'",
        ],
    )
    install(root, "acme-helpers", "1.0.3", {"acme_helpers.py": 'NAME = "helpers"\n'}, [])
    cache = root / "acme_migrations" / "__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-312.pyc").write_bytes(b"junk")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


def names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def test_an_installed_plugin_ships_its_distribution_and_its_dependencies(
    site: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()  # deploy runs from a directory that does not hold the plugin
    options = BuildOptions("acme_migrations:migration", arch="host", cwd=elsewhere)
    built = build_package(options, tmp_path / "p.zip")
    listed = names(built.path)
    assert {
        "acme_migrations/__init__.py",
        "acme_migrations/rules/__init__.py",
        "acme_migrations/rules/regions.json",  # a data file of the distribution
        "acme_migrations-1.2.0.dist-info/METADATA",  # importlib.metadata works on Lambda
        "acme_helpers.py",  # its declared dependency
        "acme_helpers-1.0.3.dist-info/METADATA",
    } <= listed
    assert not [n for n in listed if n.endswith(".pyc") or n.startswith(("../", "bin/"))]
    assert built.plugin_distribution == "acme-migrations 1.2.0"
    # pinned to what is installed; northmigrate is there already, boto3 in the runtime,
    # and an extra's requirement is not a dependency
    assert built.plugin_requirements == ("acme-helpers==1.0.3",)
    assert "acme-helpers==1.0.3" in built.requirements
    assert "acme_migrations/__init__.py" in built.plugin_files
    assert not [n for n in listed if n.startswith(("boto3/", "pytest/", "_pytest/"))]


def test_a_lambda_platform_build_asks_pip_for_the_plugin_dependencies(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        Path(command[command.index("--target") + 1]).mkdir(parents=True, exist_ok=True)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(pkg.subprocess, "run", fake_run)
    options = BuildOptions(
        "acme_migrations:migration",
        arch="x86_64",
        cwd=tmp_path,
        cache_dir=tmp_path / "cache",
        requirements=("requests==2.32.3",),
    )
    built = build_package(options, tmp_path / "p.zip")
    (command,) = calls
    assert "acme-helpers==1.0.3" in command and "requests==2.32.3" in command
    assert not [c for c in command if c.startswith(("northmigrate", "boto3", "acme-migrations"))]
    assert "acme_migrations/__init__.py" in names(built.path)


def test_the_working_directory_comes_before_an_installed_distribution(
    site: Path, tmp_path: Path
) -> None:
    local = tmp_path / "work"
    (local / "acme_migrations").mkdir(parents=True)
    (local / "acme_migrations" / "__init__.py").write_text("LOCAL = True\n")
    found = locate_plugin("acme_migrations:migration", local)
    assert found.files == [("acme_migrations/__init__.py", local / "acme_migrations/__init__.py")]


def test_an_editable_install_ships_its_source_modules_and_its_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, site = tmp_path / "src", tmp_path / "site"
    (source / "acme_edit").mkdir(parents=True)
    (source / "acme_edit" / "__init__.py").write_text("X = 1\n")
    (source / "acme_edit" / ".env").write_text("SECRET=1\n")
    site.mkdir()
    install(site, "acme-helpers", "1.0.3", {"acme_helpers.py": ""}, [])
    # pip install -e: the metadata in site-packages, the modules where they are edited
    install(site, "acme-edit", "0.1", {"__editable__.acme_edit.pth": str(source)}, ["acme-helpers"])
    (site / "acme_edit-0.1.dist-info" / "top_level.txt").write_text("acme_edit\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(source))
    importlib.invalidate_caches()
    found = locate_plugin("acme_edit:migration", tmp_path)
    assert found.files == [("acme_edit/__init__.py", source / "acme_edit" / "__init__.py")]
    assert (found.distribution, found.requires) == ("acme-edit 0.1", ("acme-helpers",))


def test_a_module_on_the_path_without_a_distribution_ships_its_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    (lib / "loose_plugin" / "sub").mkdir(parents=True)
    (lib / "loose_plugin" / "__init__.py").write_text("")
    (lib / "loose_plugin" / "sub" / "m.py").write_text("")
    (lib / "loose_plugin" / "notes.txt").write_text("not code")
    monkeypatch.syspath_prepend(str(lib))
    importlib.invalidate_caches()
    found = locate_plugin("loose_plugin.sub.m:migration", tmp_path / "nowhere")
    assert [a for a, _ in found.files] == ["loose_plugin/__init__.py", "loose_plugin/sub/m.py"]
    assert (found.distribution, found.requires) == (None, ())


def test_a_plugin_found_nowhere_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        locate_plugin("surely_not_installed_xyz:migration", tmp_path)
    assert "nor installed in this environment" in str(caught.value)
    assert "pip install" in (caught.value.hint or "")


def test_a_plugin_in_a_namespace_package_ships_the_distribution_that_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # two distributions share the namespace ``acmens`` (no __init__.py)
    install(site, "acmens-orders", "3.1", {"acmens/orders/__init__.py": "X = 1\n"}, ["acme-x"])
    install(site, "acmens-billing", "1.0", {"acmens/billing/__init__.py": "Y = 1\n"}, [])
    install(site, "acme-x", "1.0", {"acme_x.py": ""}, [])
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    found = locate_plugin("acmens.orders:migration", tmp_path)
    assert found.distribution == "acmens-orders 3.1" and found.requires == ("acme-x",)
    shipped = [a for a, _ in found.files]
    assert "acmens/orders/__init__.py" in shipped
    assert not [a for a in shipped if a.startswith(("acmens/billing", "acmens_billing"))]
