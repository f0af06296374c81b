from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project, cli_env


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The embedded endpoint (`northmigrate local`, moto's server) on a free port, as a process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "northmigrate", "local", "--port", "0"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(
            f"northmigrate local did not start: {process.stderr.read() if process.stderr else ''}"
        )
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def project(tmp_path: Path, moto_endpoint: str) -> Project:
    """A project directory with its own queues and table on the shared moto server."""
    return Project(root=tmp_path, endpoint=moto_endpoint)
