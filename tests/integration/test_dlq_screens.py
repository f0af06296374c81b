"""The DLQ commands' screens: inspect shows the reasons and a few samples by default (bodies
with --long), and a redrive to a queue that does not exist names the flag and the queue."""

from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import Project
from integration.test_dlq import SECRET, items_project, put_dead, visible_ids

from northmigrate.records import envelope

pytestmark = pytest.mark.integration

LONG = "Q" * 150  # a field value too long for a table column


def test_inspect_shows_reasons_and_a_few_samples_by_default(project: Project) -> None:
    items_project(project)
    for n in range(12):
        put_dead(project, f"D-{n:02d}", country=LONG)
    out = project.cli("dlq", "inspect", check=True).stdout
    assert "reasons" in out and "12" in out
    assert sum(f"D-{n:02d}" in out for n in range(12)) == 3  # a few samples
    assert '"country"' not in out and "QQQQ" not in out  # no bodies squeezed into a column
    assert "--long" in out  # says how to see them
    assert len(out.splitlines()) < 40
    long = project.cli("dlq", "inspect", "--long", check=True).stdout
    assert LONG in long  # each body whole, on lines of its own
    assert SECRET not in long and "***" in long  # still masked
    assert sum(f"D-{n:02d}" in long for n in range(12)) == 3
    data = project.cli_json("dlq", "inspect")
    assert len(data["messages"]) == 3 and data["messages"][0]["body"]["country"] == LONG
    assert len(project.cli_json("dlq", "inspect", "--limit", "12")["messages"]) == 12
    assert len(visible_ids(project, project.dlq_name, 12)) == 12  # nothing removed


def test_inspect_shows_every_number_of_a_body_as_it_was_sent(project: Project) -> None:
    items_project(project)
    record = {"item_id": "N-1", "amount": Decimal("1234.50"), "rate": Decimal("1E-7"), "n": 2**70}
    project.client("sqs").send_message(
        QueueUrl=project.queue_url(project.dlq_name),
        MessageBody=envelope.Envelope("items-v1", "N-1", record).to_body(),
    )
    result = project.cli("dlq", "inspect", "--long")
    assert result.returncode == 0, result.stderr
    for text in ('"amount": 1234.50', '"rate": 1E-7', f'"n": {2**70}'):
        assert text in result.stdout, result.stdout
    as_json = project.cli("dlq", "inspect", "--output", "json").stdout  # numbers, not strings
    for text in ('"amount":1234.50', '"rate":1E-7', f'"n":{2**70}'):
        assert text in as_json, as_json


def test_redrive_to_a_missing_queue_names_the_flag_and_the_queue(project: Project) -> None:
    items_project(project)
    put_dead(project, "E-1")
    result = project.cli("dlq", "redrive", "--to", "no-such-queue")
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "--to no-such-queue" in line and "does not exist" in line
    assert "provision" not in line
    assert visible_ids(project, project.dlq_name, 1) == ["E-1"]  # nothing moved
