"""``--shard`` through the CLI as a user runs it: two shards enqueue a file once between
them, ``--shard auto`` reads the engine's variables, the command that continues a shard
keeps its shard, and a bad shard or stdin is exit 2 saying what is expected."""

from __future__ import annotations

import gzip
import json
import shlex
import uuid
from pathlib import Path

import pytest
from helpers import Project, client, write_jsonl

from northmigrate.records.sample import SampleGenerator

pytestmark = pytest.mark.integration


def records(path: Path, count: int, first: int = 1, bad_every: int = 9) -> Path:
    lines: list[object] = []
    for n in range(first, first + count):
        rec = SampleGenerator(seed=n).record(n)
        rec["status"] = "approved"
        lines.append("{not json" if bad_every and n % bad_every == 0 else rec)
    return write_jsonl(path, lines)


def test_two_shards_enqueue_a_file_once_and_a_stopped_shard_continues_as_itself(
    project: Project, tmp_path: Path
) -> None:
    project.cli("provision", check=True)
    source = str(records(tmp_path / "records.jsonl", 30))  # lines 9, 18, 27 are not JSON
    first = project.cli_json("enqueue", source, "--shard", "0/2", "--rejects", "r0.jsonl")
    assert first["shard"] == "0/2" and first["resume_command"] is None
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "2"}
    part = project.cli_json("enqueue", source, "--shard", "auto", "-n", "3", env=env)
    assert part["shard"] == "1/2" and "--shard 1/2" in part["resume_command"]
    line = str(part["resume_from_line"])
    rest = project.cli_json(
        "enqueue", source, "--shard", "1/2", "--from-line", line, "--rejects", "r1.jsonl"
    )
    assert first["enqueued"] + part["enqueued"] + rest["enqueued"] == 27
    assert first["invalid"] + rest["invalid"] == 3
    rejected = [
        json.loads(entry)["line"]
        for name in ("r0.jsonl", "r1.jsonl")
        for entry in (project.root / name).read_text().splitlines()
    ]
    assert sorted(rejected) == [9, 18, 27]
    status = project.cli_json("status")
    assert status["main"]["visible"] == 27


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--shard", "3/3"], {}, "I/N with 0 <= I < N"),
        (["--shard", "a/b"], {}, "I/N with 0 <= I < N"),
        (["--shard", "auto"], {}, "JOB_COMPLETION_INDEX (with --shards N)"),
        (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "2"}, "--shards N"),
        (["--shards", "2"], {}, "--shards applies with --shard auto"),
    ],
)
def test_a_bad_shard_is_exit_2_with_the_expected_form(
    project: Project, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    source = str(records(tmp_path / "r.jsonl", 2))
    result = project.cli("validate", source, *args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def test_stdin_cannot_be_sharded(project: Project) -> None:
    result = project.cli("enqueue", "-", "--shard", "0/2", input='{"a": 1}\n')
    assert result.returncode == 2 and "cannot share stdin" in result.stderr


def test_validate_shows_its_shard_and_counts_only_its_part(
    project: Project, tmp_path: Path
) -> None:
    source = str(records(tmp_path / "r.jsonl", 20))
    env = {"JOB_COMPLETION_INDEX": "2"}
    parts = [project.cli_json("validate", source, "--shard", f"{n}/3") for n in range(2)]
    parts.append(project.cli_json("validate", source, "--shard", "auto", "--shards", "3", env=env))
    assert [p["shard"] for p in parts] == ["0/3", "1/3", "2/3"]
    assert sum(p["read"] for p in parts) == 20 and sum(p["invalid"] for p in parts) == 2


def test_a_stopped_shard_of_an_s3_prefix_continues_from_its_object_and_line(
    project: Project, tmp_path: Path
) -> None:
    project.cli("provision", check=True)
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    s3 = client("s3", project.endpoint)
    s3.create_bucket(Bucket=bucket)
    for number in range(4):
        path = records(tmp_path / f"{number}.jsonl", 8, first=100 * number + 1, bad_every=0)
        s3.put_object(Bucket=bucket, Key=f"in/{number}.jsonl", Body=path.read_bytes())
    uri = f"s3://{bucket}/in/"
    other = project.cli_json("enqueue", uri, "--shard", "0/2")
    stopped = project.cli_json("enqueue", uri, "--shard", "1/2", "-n", "10")
    assert stopped["resume_from_object"] == "in/3.jsonl" and stopped["resume_from_line"] == 3
    words = shlex.split(stopped["resume_command"])
    assert words[words.index("--from-object") + 1] == "in/3.jsonl"
    assert words[words.index("--shard") + 1] == "1/2"
    # both shards cut the same objects, and the rest is read only from those objects
    assert len(other["listing"]) == 32 and stopped["listing"] == other["listing"]
    assert words[words.index("--listing") + 1] == other["listing"]
    rest = project.cli_json(*words[1:])
    assert rest["resume_from_line"] is None and rest["read"] == 6
    assert other["enqueued"] + stopped["enqueued"] + rest["enqueued"] == 32
    assert project.cli_json("status")["main"]["visible"] == 32

    # an object rewritten (the same size, other bytes): the cuts would not hold, so no
    # shard of the old listing reads anything
    body = records(tmp_path / "again.jsonl", 8, first=901, bad_every=0).read_bytes()
    s3.put_object(Bucket=bucket, Key="in/1.jsonl", Body=body)
    changed = project.cli(*words[1:])
    assert changed.returncode == 2, changed.stderr
    assert "changed since the run started" in " ".join(changed.stderr.split())
    assert project.cli_json("status")["main"]["visible"] == 32
    misplaced = project.cli("validate", "r.jsonl", "--listing", other["listing"])
    assert misplaced.returncode == 2 and "--listing applies to s3:// sources" in misplaced.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["r.jsonl", "--fan-out", "2"], "--fan-out reads S3 sources"),
        (["s3://b-exports/in/", "--fan-out", "2", "--shard", "0/2"], "--shard does not go"),
        (["s3://b-exports/in/", "--fan-out", "2", "-n", "5"], "--limit does not go"),
        (["s3://b-exports/in/", "--fan-out", "many"], "is not a shard count"),
        (["s3://b-exports/in/", "--fan-out", "0"], "is not a shard count"),
        (["s3://b-exports/in/", "--fan-out", "2"], "--fan-out needs the fan-out deployed"),
        (["s3://b-exports/in/", "--fan-out", "2", "-j", "8"], "--concurrency does not go"),
        (["s3://b-exports/in/", "--fan-out", "2", "--segments", "4"], "applies to dynamodb://"),
        (["r.jsonl", "--resume-fan-out", "r1"], "--resume-fan-out reads S3 sources"),
        (
            ["s3://b-exports/in/", "--resume-fan-out", "r1", "--fan-out", "3"],
            "--fan-out (the run keeps its shard count) does not go with --resume-fan-out",
        ),
    ],
)
def test_a_fan_out_that_cannot_run_is_exit_2_before_anything_starts(
    project: Project, args: list[str], message: str
) -> None:
    result = project.cli("enqueue", *args)
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def test_a_fan_out_of_a_source_its_function_may_not_read_is_exit_2(project: Project) -> None:
    path = project.write_config()
    path.write_text(
        path.read_text()
        + '\n[deploy]\nfan_out = true\nfan_out_bucket = "fan-store"\n'
        + 'fan_out_sources = ["s3://b-exports/in/", "s3://whole-bucket"]\n'
    )
    result = project.cli("enqueue", "s3://b-exports/other/", "--fan-out", "2")
    assert result.returncode == 2, result.stderr
    assert "may not read s3://b-exports/other/" in result.stderr
    assert "s3://b-exports/in/, s3://whole-bucket/" in " ".join(result.stderr.split())


@pytest.mark.parametrize("source", ["r.jsonl", "r.jsonl.gz"])
def test_a_shard_of_a_file_refuses_that_file_as_its_rejects_file(
    project: Project, tmp_path: Path, source: str
) -> None:
    path = records(tmp_path / "r.jsonl", 4)
    if source.endswith(".gz"):
        (project.root / source).write_bytes(gzip.compress(path.read_bytes()))
    else:
        (project.root / source).write_bytes(path.read_bytes())
    before = (project.root / source).read_bytes()
    result = project.cli(
        "validate", source, "--shard", "1/2", "--rejects", f"./{source}", "--force"
    )
    assert result.returncode == 2 and "is the source" in result.stderr
    assert (project.root / source).read_bytes() == before  # not a byte written or cut
