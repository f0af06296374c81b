"""A plugin installed as a distribution, deployed from a directory that does not hold it, runs
on Lambda behind a real mapping (ministack).

The test builds a tiny distribution in its temp dir (``acme-installed``: the package
``acme_installed``, which needs ``sortedcontainers``), pip-installs it into a virtual
environment of its own (which sees this environment's packages, northmigrate included), and
runs ``provision``, ``deploy --dry-run`` and ``deploy`` with that environment's Python. The
function imports the plugin and its dependency from the package alone: ministack runs it
with its own Python, which has neither.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, assert_every_record_migrated, cli_env, ministack_endpoint, write_jsonl

from northmigrate.records.sample import generate

pytestmark = [pytest.mark.volume, pytest.mark.volume_ci, pytest.mark.integration]

PLUGIN = """
import dataclasses

from sortedcontainers import SortedList

from northmigrate.examples.onboarding import migration as example

SEEN = SortedList()


def handler(record, ctx):
    SEEN.add(record.application_id)
    example.handler(record, ctx)


migration = dataclasses.replace(example, name="acme-installed", handler=handler)
"""

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-installed"
version = "0.3.0"
dependencies = ["sortedcontainers>=2", "northmigrate"]

[tool.setuptools]
packages = ["acme_installed"]
"""


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=cli_env(env), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr}"
    return result


def venv_with_plugin(tmp_path: Path) -> Path:
    """A virtual environment holding ``acme-installed`` (pip-installed from its source)."""
    source = tmp_path / "acme-src"
    (source / "acme_installed").mkdir(parents=True)
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "acme_installed" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        tmp_path,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]  # pip, setuptools, northmigrate and the rest
    (Path(purelib) / "outer-environment.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            str(source),
        ],
        tmp_path,
    )
    return python


@pytest.mark.timeout(900)
def test_an_installed_plugin_deploys_and_runs_behind_a_mapping(
    ministack: str, tmp_path: Path
) -> None:
    python = venv_with_plugin(tmp_path)
    (tmp_path / "project").mkdir()
    project = Project(root=tmp_path / "project", endpoint=ministack)
    project.plugin = "acme_installed:migration"
    project.queue_settings.update(visibility_timeout=12, max_receive_count=3)
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\ntimeout_s = 2\nmax_concurrency = 4\n'
    )
    assert not (project.root / "acme_installed").exists()

    def cli(*args: str) -> dict[str, Any]:
        out = run([str(python), "-m", "northmigrate", *args, "--output", "json"], project.root)
        return dict(json.loads(out.stdout))

    cli("provision")
    plan = cli("deploy", "--dry-run")
    package = plan["package"]
    assert package["plugin_distribution"] == "acme-installed 0.3.0"
    pinned = f"sortedcontainers=={metadata.version('sortedcontainers')}"
    assert package["plugin_dependencies"] == [pinned]
    assert pinned in package["dependencies"]
    assert "acme_installed/__init__.py" in package["plugin_files"]
    assert "acme_installed-0.3.0.dist-info/METADATA" in package["plugin_files"]
    deployed = cli("deploy")
    assert deployed["changed"] is True

    records = [dict(r, status="submitted") for r in generate(40, seed=11)]
    source = write_jsonl(tmp_path / "records.jsonl", records)
    enqueued = cli("enqueue", str(source))
    assert enqueued["enqueued"] > 0

    assert_every_record_migrated(project, enqueued["enqueued"])
