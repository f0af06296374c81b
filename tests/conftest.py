from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project, start_local

from northmigrate.aws.local import atomic_requests

# In-process moto (mock_aws) is atomic too, as the embedded endpoint and AWS are: a worker's
# or a redrive's concurrent receives are never handed one message twice, and two conditional
# DynamoDB writes never both pass their check.
atomic_requests()

WORKERS_PER_CORE = 4  # see pytest_xdist_auto_num_workers
WORKERS_ENV = "NORTHMIGRATE_TEST_WORKERS"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many xdist workers ``-n auto`` (pyproject's addopts) starts: four per core the
    process may use (``$NORTHMIGRATE_TEST_WORKERS`` overrides). Most tests wait on I/O
    against the moto server (each worker has its own), on visibility timeouts, on emulated
    Lambda functions and on CLI subprocesses, so more workers than cores pays off. Measured
    with `make test` on the 2-core machine beside a process spinning one core, 1,422 tests:
    pytest took 363 s on 4 workers, 314 s on 6 and 279 s on 8."""
    configured = os.environ.get(WORKERS_ENV)
    if configured:
        return int(configured)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, WORKERS_PER_CORE * cores)


def _weight(item: pytest.Item) -> int:
    """Longest first: the volume tests (minutes of CPU on ministack), the chaos suite, the
    integration tests (a moto server, processes, visibility timeouts), then the unit tests
    (seconds or less), which fill the workers' gaps at the end."""
    path = item.path.as_posix()
    if item.get_closest_marker("volume"):
        return 0
    if "/tests/chaos/" in path:
        return 1
    if "/tests/integration/" in path:
        return 2
    return 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the longest tests first: with ``--dist load --maxschedchunk 2`` (pyproject's
    addopts) each worker takes the next test when it is free, so the long ones run side by
    side from the start instead of making the tail. The order is the same in every worker
    (xdist requires it): a stable sort of the collected order."""
    items.sort(key=_weight)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The embedded endpoint (`northmigrate local`, moto's server) on a free port, as a process."""
    process, url = start_local()
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
