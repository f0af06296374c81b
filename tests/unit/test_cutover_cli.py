"""``northmigrate cutover ...`` as a user runs it (in this process, on in-process moto, with
no config file): exact exit codes, one-line errors, the JSON keys of each command."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CliResult, run_cli
from support.cutover import Stage, aws_client, stage

from northmigrate.cutover import canary


@pytest.fixture
def s(mocked_aws: None) -> Iterator[Stage]:
    yield stage()


def cli(tmp_path: Path, *args: str) -> CliResult:
    return run_cli(tmp_path, ["cutover", *args])


def one_line_error(result: CliResult) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_the_night_through_the_cli(s: Stage, tmp_path: Path) -> None:
    planned = cli(tmp_path, "plan", "--queue", "intake", "--to", "new", "--output", "json")
    assert planned.returncode == 0, planned.stderr
    assert planned.json()["ok"] is True

    held = cli(tmp_path, "hold", "--queue", "intake", "--reason", "v2 night", "-o", "json")
    assert held.returncode == 0, held.stderr
    assert (held.json()["held"], held.json()["reason"]) == (True, "v2 night")

    shown = cli(tmp_path, "status", "--queue", s.url, "--output", "json")
    assert shown.returncode == 0, shown.stderr
    data = shown.json()
    for key in ("held", "by", "reason", "depth", "oldest_age_s", "retention_s", "mappings"):
        assert key in data
    assert data["held"] is True and data["by"].startswith("operator")
    assert data["mappings"][0]["state"] == "Disabled"
    table = cli(tmp_path, "status", "--queue", "intake")
    assert table.returncode == 0 and "why" in table.stdout and "v2 night" in table.stdout
    assert "Disabled" in table.stdout and table.stderr == ""
    steps = cli(tmp_path, "plan", "--queue", "intake", "--to", "new")
    assert steps.returncode == 0 and "ok: held by operator" in steps.stdout

    switched = cli(tmp_path, "switch", "--queue", "intake", "--to", "new", "-o", "json")
    assert switched.returncode == 0, switched.stderr
    assert switched.json()["state"] == "switched"
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}

    refused = cli(tmp_path, "finish", "--queue", "intake")  # no terminal to ask on
    assert refused.returncode == 2 and "pass --yes" in one_line_error(refused)
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}
    finished = cli(tmp_path, "finish", "--queue", "intake", "--yes")
    assert finished.returncode == 0, finished.stderr
    assert "the old mapping is deleted" in finished.stdout
    assert s.mappings() == {"new": "Enabled"}


def test_a_missing_function_or_queue_is_one_line_exit_3_and_nothing_changes(
    s: Stage, tmp_path: Path
) -> None:
    missing = cli(tmp_path, "plan", "--queue", "intake", "--to", "nope")
    assert missing.returncode == 3
    assert one_line_error(missing) == "Error: function nope does not exist (check --to)"
    old = cli(tmp_path, "plan", "--queue", "intake", "--to", "new", "--from", "nope")
    assert old.returncode == 3
    assert one_line_error(old) == "Error: function nope does not exist (check --from)"
    gone = cli(tmp_path, "hold", "--queue", "elsewhere")
    assert gone.returncode == 3
    assert one_line_error(gone).startswith("Error: queue elsewhere does not exist")
    assert s.mappings() == {"old": "Enabled"} and s.tags() == {}


def test_refusals_exit_1_and_name_what_failed(s: Stage, tmp_path: Path) -> None:
    s.function("slow", timeout=30)
    planned = cli(tmp_path, "plan", "--queue", "intake", "--to", "slow", "-o", "json")
    assert planned.returncode == 1
    failed = [c["name"] for c in planned.json()["checks"] if c["ok"] is False]
    assert failed == ["visibility_timeout"]

    not_held = cli(tmp_path, "switch", "--queue", "intake", "--to", "new")
    assert not_held.returncode == 1
    assert one_line_error(not_held) == (
        "Error: queue intake is not held (cutover hold --queue intake first)"
    )
    assert s.mappings() == {"old": "Enabled"}


def test_a_failed_canary_exits_1_with_the_queue_held(
    s: Stage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(canary, "CHECK_EVERY_S", 0.1)
    cli(tmp_path, "hold", "--queue", "intake")
    reader = aws_client("lambda", region_name="us-east-1")

    def dead_letter_once_the_canary_reads() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = reader.list_event_source_mappings(EventSourceArn=s.arn, FunctionName="new")
            if any(m["State"] == "Enabled" for m in found["EventSourceMappings"]):
                s.sqs.send_message(QueueUrl=s.dlq_url, MessageBody="poison")  # no mapping there
                return
            time.sleep(0.05)

    poison = threading.Thread(target=dead_letter_once_the_canary_reads)
    poison.start()
    result = cli(
        tmp_path, "switch", "--queue", "intake", "--to", "new", "--canary", "1",
        "--canary-wait", "60", "-o", "json",
    )  # fmt: skip
    poison.join()
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["held"] is True
    assert data["canary"]["reason"].startswith("1 new message(s) in the dead-letter queue")
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}


def test_without_a_queue_or_a_config_the_command_says_what_to_pass(
    mocked_aws: None, tmp_path: Path
) -> None:
    result = cli(tmp_path, "status")
    assert result.returncode == 2
    assert one_line_error(result) == "Error: no queue given (pass --queue NAME_OR_URL)"


def test_without_a_queue_the_config_s_main_queue_is_the_target(s: Stage, tmp_path: Path) -> None:
    (tmp_path / "northmigrate.toml").write_text(
        '[queue]\nname = "intake"\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
    )
    held = cli(tmp_path, "hold", "--reason", "main queue night", "-o", "json")
    assert held.returncode == 0, held.stderr
    assert (held.json()["queue"], held.json()["held"]) == ("intake", True)
    assert s.mappings() == {"old": "Disabled"}


def test_the_mappings_table_shows_what_caps_each_mapping_in_either_mode() -> None:
    from io import StringIO

    from rich.console import Console

    from northmigrate.cli.cutover import _mappings_table
    from northmigrate.cutover.target import QueueMapping

    def mapping(uuid: str, **extra: object) -> QueueMapping:
        data = {"UUID": uuid, "FunctionArn": "arn:aws:lambda:us-east-1:1:function:f-" + uuid}
        return QueueMapping.from_api(data | {"State": "Enabled", "BatchSize": 10} | extra)

    rows = [
        mapping("a", ScalingConfig={"MaximumConcurrency": 40}),
        mapping("b", ProvisionedPollerConfig={"MinimumPollers": 2, "MaximumPollers": 50}),
        mapping("c"),
    ]
    out = StringIO()
    Console(file=out, width=160).print(_mappings_table(rows))
    lines = {line.split()[1]: line for line in out.getvalue().splitlines() if "f-" in line}
    assert " 40 " in lines["f-a"] and "pollers 2-50" in lines["f-b"] and "—" in lines["f-c"]
