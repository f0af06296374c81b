"""A queue whose name reads as another TOML type (a number, a date, a boolean) behind a real
Lambda: the function loads its config from the environment deploy wrote and migrates every
record (before, it failed on every invocation and each record reached the DLQ without a
reason, while deploy reported success). ``make volume`` runs it; the class of values is
covered by ``unit/test_deploy_environment.py``."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project, ministack_endpoint, write_jsonl

from northmigrate.records.sample import generate

pytestmark = [pytest.mark.volume, pytest.mark.integration]


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


@pytest.mark.timeout(900)
@pytest.mark.parametrize("shape", ["number", "date"])
def test_a_queue_named_like_a_toml_value_is_served_by_the_function(
    ministack: str, tmp_path: Path, shape: str
) -> None:
    digits = random.choice("123456789") + "".join(random.choices("0123456789", k=11))
    name = digits if shape == "number" else "2024-01-01"  # the module has a ministack of its own
    project = Project(root=tmp_path, endpoint=ministack, name=name)
    project.queue_settings.update(visibility_timeout=12, max_receive_count=3)
    project.options["table"] = f"t{digits}"
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\narch = "host"\nbundle_boto3 = true\ntimeout_s = 2\nmax_concurrency = 2\n'
    )
    records = [dict(r, status="submitted") for r in generate(20, seed=7)]
    source = write_jsonl(tmp_path / "records.jsonl", records)
    project.cli("provision", check=True)
    project.cli_json("deploy")
    enqueued = project.cli_json("enqueue", str(source))["enqueued"]
    assert enqueued > 0

    deadline = time.monotonic() + 600  # a bound for a busy machine
    while project.depth() != {"visible": 0, "in_flight": 0, "delayed": 0}:
        assert time.monotonic() < deadline, f"queue not drained: {project.depth()}"
        time.sleep(2)
    letters = project.drain(project.dlq_name)
    reasons = [m["MessageAttributes"].get("northmigrate.reason") for m in letters]
    assert not letters or all(reasons), "dead letters without a reason: the config did not load"
    assert len(project.table_items()) + len(letters) == enqueued
    assert len(project.table_items()) > 0
