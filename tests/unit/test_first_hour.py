"""The rough edges of a first hour with the tool: each as a person meets it."""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from northmigrate import records
from northmigrate.aws.sqs.queue import Depth
from northmigrate.cli.app import run
from northmigrate.cli.dlq import _render_inspect
from northmigrate.cli.records import _render
from northmigrate.dlq.inspect import InspectReport
from northmigrate.enqueue.job import EnqueueReport
from northmigrate.records.validation import Rejection

REPO = Path(__file__).resolve().parents[2]
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


def test_the_readme_install_has_every_program_init_suggests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (REPO / "README.md").read_text()
    [extra] = re.findall(r"pip install -e '\.\[(\w+)\]'", readme)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = {"northmigrate"} | {
        re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0]
        for requirement in project["optional-dependencies"][extra]
    }
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NORTHMIGRATE_OUTPUT", raising=False)
    assert run(["init", "--plugin", "ledger", "--output", "json"]) == 0
    steps = json.loads(capsys.readouterr().out)["next"]
    programs = {step.split()[0] for step in steps if not step.startswith("edit ")}
    assert programs and programs <= installed, (programs, installed)


@pytest.mark.parametrize(
    ("argv", "env", "said"),
    [
        (["status", "--once", "--output", "yaml"], {}, "'yaml' is not one of"),
        (["worker", "--concurrency", "0"], {}, "must be 1 or more"),
        (["worker", "--concurrency", "100000"], {}, "must be 512 or less"),
        (["dlq", "inspect", "--limit", "x"], {}, "must be a whole number"),
        (["dlq", "redrive", "--canary", "1", "--canary-wait", "0"], {}, "must be 1 or more"),
        (["status", "--once"], {"NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT": "0"}, "1 or more"),
        (["status", "--once"], {"NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT": "x"}, "a whole number"),
    ],
)
def test_a_bad_value_is_told_in_plain_words_not_pydantics(
    argv: list[str],
    env: dict[str, str],
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NORTHMIGRATE_OUTPUT", "NORTHMIGRATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run(["init"]) == 0
    capsys.readouterr()
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert said in err, err
    assert "Value error" not in err and "Input should" not in err, err


def test_a_custom_validators_message_is_a_rejection_without_pydantics_prefix() -> None:
    from pydantic import BaseModel, field_validator

    from northmigrate.records.validation import describe_validation

    class Account(BaseModel):
        code: str

        @field_validator("code")
        @classmethod
        def _known(cls, value: str) -> str:
            raise ValueError("code is not one of ours")

    with pytest.raises(Exception) as caught:
        Account.model_validate({"code": "x"})
    assert describe_validation(caught.value) == "code: code is not one of ours"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attribute", "hint"),
    [
        ("migraton", "did you mean migration?"),
        ("Migration", "did you mean migration?"),
        ("migrations", "did you mean migration?"),
        ("ledger", "its Migration is migration"),
    ],
)
def test_a_misspelled_plugin_attribute_gets_a_did_you_mean(
    attribute: str, hint: str, tmp_path: Path
) -> None:
    from northmigrate.errors import PluginError
    from northmigrate.plugin import load_migration

    module = f"nm_fh_{attribute.lower()}"
    (tmp_path / f"{module}.py").write_text(
        "from pydantic import BaseModel\n"
        "from northmigrate import Migration\n"
        "class Record(BaseModel):\n    id: str\n"
        "migration = Migration(name='l', model=Record, key='id', handler=lambda r, c: None)\n"
    )
    with pytest.raises(PluginError) as caught:
        load_migration(f"{module}:{attribute}", cwd=tmp_path)
    assert caught.value.hint == hint, str(caught.value)
    assert hint in str(caught.value)


@pytest.fixture
def other_program() -> Iterator[int]:
    """A port another program (a web server that is no AWS endpoint) listens on."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_who_listens_on_a_port_is_told_apart(other_program: int) -> None:
    from northmigrate.aws.local import EMBEDDED, FREE, OTHER, EmbeddedEndpoint, free_port, listener

    assert listener("127.0.0.1", free_port()) == FREE
    assert listener("127.0.0.1", other_program) == OTHER
    with EmbeddedEndpoint(port=0) as endpoint:
        assert listener("127.0.0.1", endpoint.port) == EMBEDDED


def test_local_on_a_port_another_program_holds_fails_and_on_its_own_says_so(
    other_program: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from northmigrate.aws.local import EmbeddedEndpoint

    assert run(["local", "--port", str(other_program)]) == 2
    err = capsys.readouterr().err
    assert "another program" in err and "--port" in err, err
    with EmbeddedEndpoint(port=0) as endpoint:
        assert run(["local", "--port", str(endpoint.port)]) == 0
    assert "already listening" in capsys.readouterr().err


def test_init_never_points_the_config_at_another_programs_endpoint(
    other_program: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import northmigrate.cli.init as init_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NORTHMIGRATE_OUTPUT", raising=False)
    monkeypatch.setattr(init_cli, "DEFAULT_PORT", other_program)
    assert run(["init", "--output", "json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["port_taken"] == other_program and f"port {other_program}" in err
    config = tomllib.loads((tmp_path / "northmigrate.toml").read_text())
    port = int(config["aws"]["endpoint_url"].rsplit(":", 1)[1])
    assert port != other_program and data["next"][0] == f"northmigrate local --port {port} &"
