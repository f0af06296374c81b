"""The wheel holds what users run: the library and its CLI, never the tests' support code.

The wheel is built offline from a copy of the sources (``pip wheel --no-build-isolation``
with the environment's setuptools), as a release would build it, and its entries are read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "northmigrate",
        src / "northmigrate",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--verbose",  # the build backend's warnings, to check below
            "--wheel-dir",
            str(out / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # setuptools' banner about the deprecated license table (it printed it three times)
    said = (done.stdout + done.stderr).lower().splitlines()
    assert not [line for line in said if "deprecat" in line and "license" in line]
    [wheel] = (out / "dist").glob("northmigrate-*.whl")
    return wheel


def test_the_wheel_ships_the_library_and_its_cli_and_no_test_support(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())

    assert not [n for n in names if not n.startswith("northmigrate")], "only northmigrate"
    subpackages = {
        n.split("/")[1] for n in names if n.startswith("northmigrate/") and n.count("/") > 1
    }
    assert "testing" not in subpackages
    assert not [n for n in names if "proxy" in n or "emulators" in n]
    for shipped in (
        "northmigrate/cli/app.py",
        "northmigrate/cli/status.py",
        "northmigrate/control/status.py",
        "northmigrate/deploy/package.py",
        "northmigrate/examples/onboarding.py",
        # init's starter files: a pip user has them, not only a checkout
        "northmigrate/templates/local.toml",
        "northmigrate/templates/aws.example.toml",
        "northmigrate/templates/plugin.py.tmpl",
        "northmigrate/templates/test_plugin.py.tmpl",
    ):
        assert shipped in names

    # The license as an SPDX expression (PEP 639), with its file: no deprecated table form.
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get("License") is None
    assert [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]

    # deploy imports packaging: it is a declared runtime dependency, not a lucky transitive one.
    required = {Requirement(r).name for r in metadata.get_all("Requires-Dist") or []}
    assert "packaging" in required


def test_the_readme_installs_from_a_checkout() -> None:
    """The package is not published: the README's install commands work from a checkout,
    and the published form is only mentioned for later."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.strip()
        for block in install.split("```sh")[1:]
        for line in block.split("```", 1)[0].splitlines()
        if line.strip()
    ]
    assert (
        "pip install -e '.[local]'     "
        "# [local]: the embedded AWS endpoint (moto's server) and pytest" in (commands)
    )
    assert not [c for c in commands if c.startswith("pip install 'northmigrate")]
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
