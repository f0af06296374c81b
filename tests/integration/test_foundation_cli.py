"""The foundation through the CLI, as a user runs it, on the embedded endpoint (moto's server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import CliResult, Project, cli_env, signal_and_wait, start_local, write_jsonl

from northmigrate import __version__
from northmigrate.records.sample import SampleGenerator

pytestmark = pytest.mark.integration


def record(n: int, status: str = "approved", **changes: Any) -> dict[str, Any]:
    rec = SampleGenerator(seed=n).record(n)
    rec["status"] = status
    rec.update(changes)
    return rec


def mixed_source(path: Path) -> tuple[Path, set[str], dict[int, str]]:
    """A file with eligible, ineligible, invalid, duplicate and oversize lines.

    Returns the path, the ids that must be enqueued, and {line: kind} of every bad line.
    """
    lines: list[Any] = []
    expected: set[str] = set()
    bad: dict[int, str] = {}
    for n in range(1, 61):
        kind = n % 6
        if kind == 0:
            lines.append(record(n, status="draft"))  # ineligible
        elif kind == 1 and n > 1:
            lines.append(json.dumps(record(n))[:40])  # truncated JSON
            bad[len(lines)] = "invalid"
        elif kind == 2:
            rec = record(n)
            del rec["business"]["ein"]
            lines.append(rec)
            bad[len(lines)] = "invalid"
        elif kind == 3 and n > 10:
            lines.append(record(n - 9))  # the same application again: a duplicate
            bad[len(lines)] = "duplicate"
        elif kind == 4 and n % 4 == 0:
            lines.append(record(n, referral_code="x" * 9000))  # over the queue's 8 KiB limit
            bad[len(lines)] = "invalid"
        else:
            rec = record(n, status="submitted" if n % 2 else "approved")
            lines.append(rec)
            expected.add(rec["application_id"])
    lines.insert(5, "")  # blank lines are not records
    bad = {line + (1 if line > 5 else 0): kind for line, kind in bad.items()}
    return write_jsonl(path, lines), expected, bad


@pytest.fixture
def provisioned(project: Project) -> Project:
    project.queue_settings["max_message_size"] = 8192
    project.write_config()
    project.cli("provision", check=True)
    return project


def test_provision_is_idempotent(project: Project) -> None:
    first = project.cli_json("provision")
    assert {c["action"] for c in first["changes"]} == {"created"}
    assert first["queue_url"].endswith(project.queue_name)
    assert first["dlq_arn"].endswith(project.dlq_name)
    second = project.cli_json("provision")
    assert second["changed"] is False
    assert {c["action"] for c in second["changes"]} == {"unchanged"}
    table = project.cli("provision")
    assert "nothing to change" in table.stdout
    attrs = project.client("sqs").get_queue_attributes(
        QueueUrl=project.queue_url(), AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    # the worker's 3 tries, and the receive headroom above them (default 10)
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 3 + 10


def test_validate_and_enqueue_a_mixed_file(provisioned: Project, tmp_path: Path) -> None:
    project = provisioned
    source, expected, bad = mixed_source(tmp_path / "records.jsonl")
    invalid = sum(1 for kind in bad.values() if kind == "invalid")
    duplicates = sum(1 for kind in bad.values() if kind == "duplicate")

    validated = project.cli_json("validate", str(source), "--rejects", "v.rejects.jsonl")
    assert validated["read"] == 60
    assert (validated["invalid"], validated["duplicates"]) == (invalid, duplicates)
    assert validated["eligible"] == len(expected)
    assert validated["valid"] == validated["eligible"] + validated["ineligible"]
    assert sorted(e["line"] for e in validated["errors"]) == sorted(bad)
    assert project.depth()["visible"] == 0  # validate sends nothing

    strict = project.cli("validate", str(source), "--strict")
    assert strict.returncode == 1

    enqueued = project.cli_json("enqueue", str(source), "--rejects", "rejects.jsonl")
    assert enqueued["enqueued"] == len(expected) and enqueued["failed"] == 0
    assert enqueued["run_id"]

    messages = project.drain()
    ids = [json.loads(m["Body"])["record_id"] for m in messages]
    assert sorted(ids) == sorted(expected)  # exactly the eligible valid records, each once
    for m in messages:
        assert (
            m["MessageAttributes"]["northmigrate.record_id"]["StringValue"]
            == json.loads(m["Body"])["record_id"]
        )

    rejects = [
        json.loads(line) for line in (project.root / "rejects.jsonl").read_text().splitlines()
    ]
    assert {r["line"]: r for r in rejects}.keys() == bad.keys()
    source_lines = source.read_text().splitlines()
    for r in rejects:
        assert r["raw"] == source_lines[r["line"] - 1]  # the original line, as it was
        assert r["error"]
    assert os.stat(project.root / "rejects.jsonl").st_mode & 0o777 == 0o600


def test_dry_run_limit_and_stdin(provisioned: Project, tmp_path: Path) -> None:
    project = provisioned
    records = [record(n) for n in range(1, 21)]
    source = write_jsonl(tmp_path / "r.jsonl", records)
    dry = project.cli_json("enqueue", str(source), "--dry-run")
    assert (dry["dry_run"], dry["eligible"], dry["enqueued"]) == (True, 20, 0)
    assert project.depth()["visible"] == 0

    limited = project.cli_json("enqueue", str(source), "--limit", "7")
    assert limited["enqueued"] == 7 and limited["resume_from_line"] == 8
    resumed = project.cli_json("enqueue", str(source), "--from-line", "8")
    assert resumed["enqueued"] == 13
    ids = sorted(json.loads(m["Body"])["record_id"] for m in project.drain())
    assert ids == sorted(r["application_id"] for r in records)

    piped = project.cli_json("enqueue", "-", input=source.read_text())
    assert piped["enqueued"] == 20 and piped["source"] == "<stdin>"
    assert len(project.drain()) == 20


def test_csv_json_and_jsonl_give_the_same_counts(project: Project, tmp_path: Path) -> None:
    results = []
    for fmt in ("jsonl", "json", "csv"):
        path = tmp_path / f"s.{fmt}"
        project.cli(
            "sample",
            "--count",
            "80",
            "--invalid-rate",
            "0.1",
            "--duplicate-rate",
            "0.05",
            "--format",
            fmt,
            "--out",
            str(path),
            check=True,
        )
        out = project.cli_json("validate", str(path))
        results.append(
            {
                k: out[k]
                for k in ("read", "valid", "eligible", "ineligible", "invalid", "duplicates")
            }
        )
    assert results[0] == results[1] == results[2]
    assert results[0]["read"] == 80 and results[0]["invalid"] > 0 and results[0]["ineligible"] > 0


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_error_paths_give_one_line_and_the_contract_exit_code(
    project: Project, tmp_path: Path
) -> None:
    missing = project.cli("validate", "nope.jsonl")
    assert (missing.returncode, missing.stderr) == (2, "Error: source nope.jsonl does not exist\n")
    assert missing.stdout == ""

    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"this is not gzip")
    unreadable = project.cli("validate", str(broken))
    assert unreadable.returncode == 2
    assert unreadable.stderr == f"Error: cannot read {broken}: Not a gzipped file (b'th')\n"

    (project.root / "bad.toml").write_text(
        '[queue]\nname = "q"\nmax_recieve_count = 3\n[migration]\nplugin = "a:b"\n'
    )
    bad_key = project.cli("--config", "bad.toml", "validate", "x.jsonl")
    assert (bad_key.returncode, bad_key.stderr) == (
        2,
        "Error: unknown key queue.max_recieve_count in bad.toml line 3 "
        "(did you mean max_receive_count?)\n",
    )

    project.plugin = "no_such_module:migration"
    project.write_config()
    bad_plugin = project.cli("validate", str(broken))
    assert (bad_plugin.returncode, bad_plugin.stderr) == (
        2,
        "Error: cannot import plugin module 'no_such_module': ModuleNotFoundError: "
        "No module named 'no_such_module'\n",
    )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    project.plugin = "northmigrate.examples.onboarding:migration"
    project.write_config()
    down = project.cli(
        "provision",
        env={"NORTHMIGRATE_AWS__ENDPOINT_URL": dead, "NORTHMIGRATE_AWS__MAX_ATTEMPTS": "1"},
    )
    assert down.returncode == 3 and "cannot reach the AWS endpoint" in one_error_line(down.stderr)

    no_queue = project.cli("enqueue", str(broken))
    assert no_queue.returncode == 3 and "does not exist" in one_error_line(no_queue.stderr)

    usage = project.cli("enqueue", "--limit", "zero", "x.jsonl")
    assert (usage.returncode, usage.stdout, usage.stderr) == (
        2,
        "",
        "Error: Invalid value for '--limit' / '-n': must be a whole number "
        "(see: northmigrate enqueue --help)\n",
    )

    debug = project.cli("--debug", "validate", "nope.jsonl")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_every_command_has_help(project: Project) -> None:
    top = project.cli("--help")
    assert top.returncode == 0
    commands = ["local", "provision", "sample", "validate", "enqueue"]
    for name in commands:
        assert name in top.stdout
        result = project.cli(name, "--help")
        assert result.returncode == 0, name
        assert "Usage:" in result.stdout and len(result.stdout) > 200, name
    assert project.cli("--version") == CliResult(0, f"northmigrate {__version__}\n", "")


def test_status_reports_the_last_run_and_the_tap(provisioned: Project, tmp_path: Path) -> None:
    project = provisioned
    source = write_jsonl(tmp_path / "r.jsonl", [record(n) for n in range(1, 13)])
    project.cli_json("enqueue", str(source))
    status = project.cli_json("status")
    assert status["main"] == {"visible": 12, "in_flight": 0, "delayed": 0}
    assert status["last_run"]["enqueued"] == 12
    assert status["progress"]["done"] == 0 and status["tap"]["open"] is True
    assert status["tap"]["limit"] is None and status["lambda"] == []
    project.drain()
    project.cli("tap", "close", "--reason", "the new service is paused", check=True)
    status = project.cli_json("status", "--once")
    assert status["progress"]["done"] == 12 and status["tap"]["open"] is False
    assert status["tap"]["closed_by"] == "operator"
    assert status["tap"]["reason"] == "the new service is paused"
    text = project.cli("status", "--once", check=True).stdout
    assert "closed by" in text and "operator" in text and "the new service is paused" in text


@pytest.mark.parametrize("command", ["validate", "enqueue"])
def test_the_first_sigint_stops_a_read_that_never_ends(provisioned: Project, command: str) -> None:
    """One line of zeros that never ends, on stdin: the first Ctrl-C stops the command within
    a few seconds (it read on for minutes), exit 130, one summary, nothing sent."""
    process = subprocess.Popen(
        [sys.executable, "-m", "northmigrate", command, "-", "--output", "json"],
        cwd=provisioned.root,
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stop = threading.Event()
    fed = [0]  # bytes written to its stdin

    def feed() -> None:
        block = b"0" * (1 << 16)
        assert process.stdin is not None
        try:
            while not stop.is_set():
                process.stdin.write(block)
                fed[0] += len(block)
        except (BrokenPipeError, ValueError, OSError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    # Well into the endless line: past the 4 MiB cap (a pipe holds 64 KiB), however
    # long its start took on a busy machine. A signal during the start is another test.
    deadline = time.monotonic() + 120
    while fed[0] < 8 << 20:
        assert process.poll() is None and time.monotonic() < deadline, process.returncode
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    try:
        # Not communicate(): it would close stdin, and an end of input stops any reader.
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("one SIGINT did not stop a read that never ends") from None
    finally:
        stop.set()
    elapsed = time.monotonic() - started
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout.read(), process.stderr.read()
    assert process.returncode == 130, stderr
    assert elapsed < 20  # a read that went on would go on for ever
    summary = json.loads(stdout)
    assert summary["read"] == 0
    if command == "enqueue":
        assert summary["interrupted"] is True and summary["enqueued"] == 0
    assert provisioned.depth()["visible"] == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_local_endpoint_stops_cleanly_on_a_signal(signum: int) -> None:
    """``northmigrate local`` runs until Ctrl-C or SIGTERM (how a script or a container stops
    it), then shuts its server down and exits 0."""
    process, url = start_local(stderr=subprocess.PIPE)  # no request: nothing logged
    try:
        assert url.startswith("http://127.0.0.1:"), url
    finally:
        _out, err = signal_and_wait(process, signum)
    assert process.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
