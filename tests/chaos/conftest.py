"""Fixtures of the fault-injection suite.

The CI profile (default) runs on the moto server the tests start; the large profile
(``NORTHMIGRATE_CHAOS=large``) on ministack, started for this package (skipped when it is
not installed: ``make ministack``, or ``NORTHMIGRATE_MINISTACK=/path/to/ministack``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project
from support.emulators import find_ministack, start_ministack
from support.proxy import FaultPlan, FaultProxy

from .support import Profile, current_profile


@pytest.fixture(scope="session")
def profile() -> Profile:
    return current_profile()


@pytest.fixture(scope="session")
def upstream(request: pytest.FixtureRequest, profile: Profile) -> Iterator[str]:
    """The endpoint behind the proxy."""
    if profile.name == "ci":
        yield str(request.getfixturevalue("moto_endpoint"))
        return
    if find_ministack() is None:
        pytest.skip("ministack is not installed (make ministack, or set NORTHMIGRATE_MINISTACK)")
    with start_ministack() as emulator:
        yield emulator.url


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the endpoint, injecting nothing until a test says so."""
    with FaultProxy(upstream, FaultPlan()) as running:
        yield running


@pytest.fixture
def chaos_project(tmp_path: Path, upstream: str) -> Project:
    """A project whose config names the endpoint itself: the commands under test get the
    proxy through NORTHMIGRATE_AWS__ENDPOINT_URL, the checks go straight to the endpoint."""
    return Project(root=tmp_path, endpoint=upstream)
