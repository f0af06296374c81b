"""``dlq redrive --canary``: a stop at any point is ``"interrupted": true`` in the JSON, and
the verdict is printed once (moto in-process)."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import aws_client
from pydantic import BaseModel

from northmigrate.aws.clients import AwsClients
from northmigrate.cli.app import run
from northmigrate.cli.canary import outcome
from northmigrate.dlq.canary import canary_redrive
from northmigrate.plugin import Migration
from northmigrate.records import envelope


class Record(BaseModel):
    id: str


NEVER_MIGRATED = Migration(
    name="canary", model=Record, key="id", handler=lambda r, c: None, verify=lambda r, c: False
)


def queues_with_letters(count: int) -> tuple[Any, str, str]:
    sqs = AwsClients().client("sqs")
    main = sqs.create_queue(QueueName="canary")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="canary-dlq")["QueueUrl"]
    for n in range(count):
        body = envelope.Envelope("canary", f"R{n}", {"id": f"R{n}"}).to_body()
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
    return sqs, main, dlq


@pytest.mark.parametrize("when", ["before the first move", "while waiting for the verdict"])
def test_a_stopped_canary_says_interrupted_in_its_json(mocked_aws: None, when: str) -> None:
    sqs, main, dlq = queues_with_letters(3)
    stop = threading.Event()
    if when == "before the first move":
        stop.set()
    else:  # set once the canary moved: the wait for its verdict (60 s) is what it stops
        original = stop.wait

        def wait_then_stop(timeout: float | None = None) -> bool:
            stop.set()
            return original(timeout)

        stop.wait = wait_then_stop  # type: ignore[method-assign]
    report = canary_redrive(
        sqs,
        dlq,
        main,
        migration=NEVER_MIGRATED,
        clients=AwsClients(),
        options={},
        size=1,
        wait_s=60,
        redrive_kwargs={},
        stop=stop,
        poll_s=0.01,
    )
    assert report.interrupted
    data = json.loads(json.dumps(outcome(report), default=str))
    assert data["interrupted"] is True and data["canary"]["interrupted"] is True


PLUGIN = """
from pydantic import BaseModel
from northmigrate import Migration

class Record(BaseModel):
    id: str

migration = Migration(
    name="canary", model=Record, key="id", handler=lambda r, c: None,
    verify=lambda r, c: False,
)
"""


@pytest.fixture
def project(
    mocked_aws: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in ("NORTHMIGRATE_CONFIG", "NORTHMIGRATE_OUTPUT", "FORCE_COLOR", "CI"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "nm_canary_plugin.py").write_text(PLUGIN)
    (tmp_path / "northmigrate.toml").write_text(
        textwrap.dedent("""\
            [aws]
            region = "us-east-1"

            [queue]
            name = "canary"

            [migration]
            plugin = "nm_canary_plugin:migration"

            [deploy]
            arch = "host"
        """)
    )
    assert run(["provision"]) == 0
    yield tmp_path


def test_a_failed_canarys_verdict_is_printed_once(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = aws_client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="canary-dlq")["QueueUrl"]
    body = envelope.Envelope("canary", "R1", {"id": "R1"}).to_body()
    sqs.send_message(QueueUrl=url, MessageBody=body)
    capsys.readouterr()
    code = run(["dlq", "redrive", "--canary", "1", "--canary-wait", "1"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert (out + err).count("nothing more moved") == 1, out + err
