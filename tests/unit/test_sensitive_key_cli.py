"""A sensitive field used as the key, and a huge number in a sensitive field, through the
commands a person runs (in-process, moto's ``mock_aws``).

The key: every channel that names a record (validate's JSON ``errors`` and its table,
enqueue, the ``northmigrate.record_id`` attribute, the worker's JSON log lines, the dead
letter, ``dlq inspect`` and its ``--long`` view and export, reconcile's lists) shows a keyed
digest, never the value; the digest is the same in each, so ``--where record_id=`` and
reconcile still find the record.

The number: ``validate`` rejects it with a reason, ``dlq inspect`` (and ``--export``) and
``reconcile`` read a dead letter that holds it and mask it, none exits 70.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import aws_client

from northmigrate.cli.app import run
from northmigrate.records import envelope
from northmigrate.records.ids import ENV_KEY, is_digest

PLUGIN = """
from decimal import Decimal
from pydantic import BaseModel
from northmigrate import Migration, PermanentError

class Record(BaseModel):
    ssn: str
    name: str
    amount: Decimal | None = None
    n: int = 0

def handle(record, ctx):
    raise PermanentError("no target for this one")

migration = Migration(
    name="people", model=Record, key="ssn", handler=handle,
    verify=lambda record, ctx: False, sensitive=("ssn", "name", "amount"),
)
"""
SSNS = ["111-22-3333", "444-55-6666", "777-88-9999"]
HEX_ID = re.compile(r"h:[0-9a-f]{24}")


@dataclass
class Project:
    root: Path
    sqs: Any
    capsys: pytest.CaptureFixture[str]

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = run(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def source(self, rows: list[dict[str, Any]], name: str = "people.jsonl") -> str:
        path = self.root / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(path)


@pytest.fixture
def project(
    mocked_aws: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Project]:
    monkeypatch.chdir(tmp_path)
    for name in ("NORTHMIGRATE_CONFIG", "NORTHMIGRATE_OUTPUT", "FORCE_COLOR", "CI", ENV_KEY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "nm_people_plugin.py").write_text(PLUGIN)
    (tmp_path / "northmigrate.toml").write_text(
        textwrap.dedent("""\
            [aws]
            region = "us-east-1"

            [queue]
            name = "people"
            max_receive_count = 3
            visibility_timeout = 30

            [migration]
            plugin = "nm_people_plugin:migration"

            [deploy]
            arch = "host"
        """)
    )
    project = Project(tmp_path, aws_client("sqs", region_name="us-east-1"), capsys)
    code, _, err = project.run("provision")
    assert code == 0, err
    yield project


def rows() -> list[dict[str, Any]]:
    return [
        {"ssn": SSNS[0], "name": "Ann Example"},  # valid
        {"ssn": SSNS[1], "name": "Bob Example", "n": "many"},  # invalid: n
        {"ssn": SSNS[2], "name": "Cy Example"},  # valid
        {"ssn": SSNS[2], "name": "Cy Again"},  # a duplicate
    ]


def no_value(*texts: str) -> None:
    for text in texts:
        for secret in [*SSNS, *(s.replace("-", "") for s in SSNS), "Example"]:
            assert secret not in text, (secret, text[:3000])


def test_a_sensitive_key_is_a_stable_digest_in_every_channel(project: Project) -> None:
    source = project.source(rows())
    code, out, err = project.run("validate", source, "--output", "json")
    assert code == 0, err
    report = json.loads(out)
    no_value(out, err)
    ids = {e["record_id"] for e in report["errors"]}
    assert len(ids) == 2 and all(is_digest(i) for i in ids), report["errors"]

    code, table, err = project.run("validate", source)
    no_value(table, err)
    assert HEX_ID.search(table), table

    code, out, err = project.run("enqueue", source, "--output", "json")
    assert code == 0, err
    no_value(out, err)

    code, out, err = project.run(
        "worker", "--until-empty", "--log-format", "json", "--output", "json"
    )
    assert code in (0, 1), err
    no_value(out, err)
    logged = {
        json.loads(line)["record_id"]
        for line in err.splitlines()
        if line.startswith("{") and "record_id" in line
    }
    assert len(logged) == 2 and all(is_digest(i) for i in logged), err[:2000]

    dlq = project.url("people-dlq")
    got = project.sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    attributes = {m["MessageAttributes"][envelope.ATTR_RECORD_ID]["StringValue"] for m in got}
    assert attributes == logged

    code, out, err = project.run("dlq", "inspect", "--long")
    assert code == 0, err
    no_value(out, err)
    assert set(HEX_ID.findall(out)) >= logged, out

    code, out, err = project.run("dlq", "inspect", "--output", "json")
    assert code == 0, err
    no_value(out, err)

    code, out, err = project.run("reconcile", source, "--output", "json")
    assert code == 0, err
    no_value(out, err)
    assert json.loads(out)["dead_lettered"] == 2  # the same digests: reconcile found them

    one = sorted(logged)[0]
    code, out, err = project.run(
        "dlq", "redrive", "--dry-run", "--where", f"record_id={one}", "--output", "json"
    )
    assert code == 0, err
    assert json.loads(out)["matched"] == 1


def test_the_digest_is_keyed_by_the_record_id_key_when_it_is_set(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = project.source(rows())
    seen = []
    for key in ("a" * 16, "b" * 16, "a" * 16):
        monkeypatch.setenv(ENV_KEY, key)
        code, out, err = project.run("validate", source, "--output", "json")
        assert code == 0, err
        seen.append(sorted(e["record_id"] for e in json.loads(out)["errors"]))
    assert seen[0] == seen[2] != seen[1]
    monkeypatch.setenv(ENV_KEY, "short")
    code, out, err = project.run("validate", source)
    assert code == 2 and ENV_KEY in err


@pytest.mark.parametrize("number", ["1e999999999", "-1e-999999999", "1e1000000"])
def test_a_huge_sensitive_number_is_a_rejection_and_a_masked_dead_letter(
    project: Project, number: str
) -> None:
    path = project.root / "huge.jsonl"
    path.write_text(f'{{"ssn": "{SSNS[0]}", "name": "Ann Example", "amount": {number}, "n": 5}}\n')
    code, out, err = project.run("validate", str(path), "--output", "json")
    assert code == 0, err  # a rejection, reported
    [error] = json.loads(out)["errors"]
    assert "number" in error["error"] and "Overflow" not in out + err
    no_value(out, err)

    record = f'{{"ssn": "{SSNS[0]}", "name": "Ann Example", "amount": {number}}}'
    body = f'{{"northmigrate": 1, "migration": "people", "record_id": "h:0", "record": {record}}}'
    project.sqs.send_message(QueueUrl=project.url("people-dlq"), MessageBody=body)
    for argv in (
        ["dlq", "inspect", "--long"],
        ["dlq", "inspect", "--output", "json"],
        ["dlq", "inspect", "--export", str(project.root / "out.jsonl")],
    ):
        code, out, err = project.run(*argv)
        assert code == 0, (argv, err)
        assert "Overflow" not in out + err and number.lstrip("-")[:5] not in out + err
        no_value(out, err)
    exported = (project.root / "out.jsonl").read_text()
    no_value(exported)
    assert number.lstrip("-")[:5] not in exported.upper().lower()
    code, out, err = project.run("reconcile", str(path), "--output", "json")
    assert code == 0, err
    assert "Overflow" not in out + err
