"""The rough edges of a first hour with the tool: each as a person meets it."""

from __future__ import annotations

import itertools
import json

import pytest
from rich.console import Console

from northmigrate import records
from northmigrate.aws.sqs.queue import Depth
from northmigrate.cli.dlq import _render_inspect
from northmigrate.cli.records import _render
from northmigrate.dlq.inspect import InspectReport
from northmigrate.enqueue.job import EnqueueReport
from northmigrate.records.validation import Rejection

BROKEN_JSON = [
    '{"a": "never closed',
    '{"a": 1,',
    '{"a" 1}',
    '{"a": "\x01"}',
    '{"a": "\\q"}',
    '{"a": "\\u12"}',
    "[1, 2",
    '{"a": 1} trailing',
    "",
    "{'a': 1}",
]


@pytest.mark.parametrize("text", BROKEN_JSON)
def test_every_json_error_is_said_once_with_its_column(text: str) -> None:
    with pytest.raises(records.RecordSyntaxError) as caught:
        records.loads(text)
    reason = str(caught.value)
    assert reason.startswith("invalid JSON (") and " at column " in reason
    words = reason.split()
    assert all(a != b for a, b in itertools.pairwise(words)), reason


def rendered(render: object, width: int = 80) -> str:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    render(console)  # type: ignore[operator]
    return console.export_text()


def inspect_report() -> InspectReport:
    report = InspectReport(queue="people-dlq", depth=Depth(2, 0, 0), scanned=2)
    for n in range(2):
        report.messages.append(
            {
                "message_id": f"3f0c2a7e-51d9-4a8b-9c6e-2b7d1e0f4a{n}c",
                "record_id": f"APP-00001{n}",
                "receive_count": 3,
                "reason": "TargetUnavailable: onboarding service unavailable in region ON",
                "origin": None,
                "body": {"application_id": f"APP-00001{n}"},
            }
        )
    return report


def test_inspect_says_its_own_reads_are_in_the_receive_count() -> None:
    table = rendered(lambda c: _render_inspect(inspect_report(), c))
    assert "receives*" in table and "inspect's own reads included" in table
    long = rendered(lambda c: _render_inspect(inspect_report(), c, long=True))
    assert "receives 3 (inspect's reads included)" in long


def test_at_80_columns_a_message_id_is_never_cut() -> None:
    table = rendered(lambda c: _render_inspect(inspect_report(), c))
    for m in inspect_report().messages:
        assert m["message_id"] in table, table
    sample = table[table.index("sample (2 of 2)") :].splitlines()[1:-2]
    assert all(len(line) <= 80 and line.rstrip()[-1] in "│┃┓┩┘" for line in sample), table
    assert len(sample) <= 4 + 2 * 3, table  # header, and three lines a letter at most


def test_at_80_columns_a_rejections_error_does_not_repeat_its_field() -> None:
    report = EnqueueReport(source="people.jsonl", validate_only=True)
    problems = [
        ("business.address.postal_code", "String should match pattern '^[A-Za-z0-9 -]{3,10}$'"),
        ("owners.0.ownership_pct", "Decimal input should have no more than 2 decimal places"),
    ]
    for line, (field, problem) in enumerate(problems, start=1):
        rejection = Rejection(line, f"APP-00000{line}", field, f"{field}: {problem}")
        report.tally.errors.append(rejection)
        report.tally.errors_total += 1
    table = rendered(lambda c: _render(report, c, "validate"))
    assert all(len(line) <= 80 for line in table.splitlines())
    for field, _ in problems:
        assert table.count(field.split(".")[-1]) == 1, table  # in the field column only
    rejected = table[table.index("rejected (2)") :]
    rows = [line for line in rejected.splitlines() if line.startswith("│")]
    assert all(line.rstrip()[-1] in "│┃┓┩┘" for line in rejected.splitlines()[1:]), table
    assert len(rows) <= 2 * 3, table  # each error wraps to three lines at most
    data = json.loads(json.dumps(report.to_dict(), default=str))
    assert data["errors"][0]["error"].startswith(problems[0][0])  # the JSON keeps it whole
