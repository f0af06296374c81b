from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project, cli_env

from northmigrate.local import atomic_requests

# In-process moto (mock_aws) is atomic too, as the embedded endpoint and AWS are: a worker's
# or a redrive's concurrent receives are never handed one message twice, and two conditional
# DynamoDB writes never both pass their check.
atomic_requests()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The embedded endpoint (`northmigrate local`, moto's server) on a free port, as a process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "northmigrate", "local", "--port", "0"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # moto logs each request: an unread pipe would stall it
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError("northmigrate local did not start (run it by hand to see why)")
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
