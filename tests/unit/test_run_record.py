"""The run state file status reads: kept up to date while a part sends, and the parts of one
migration run (a canary, then --from-line) adding up under the first part's run id."""

from __future__ import annotations

from pathlib import Path

from northmigrate.control.status import RunRecorder, read_last_run


def recorder(path: Path, run_id: str, *, continues: bool, source: str = "r.jsonl") -> RunRecorder:
    return RunRecorder(run_id, source, "q", continues=continues, now=lambda: "t", path=path)


def test_a_part_in_progress_adds_to_the_run_it_continues(tmp_path: Path) -> None:
    path = tmp_path / "last-run.json"
    canary = recorder(path, "run-1", continues=False)
    canary.update(0)
    assert read_last_run(path) is None  # nothing enqueued, nothing written
    canary.update(5)
    rest = recorder(path, "run-2", continues=True)
    rest.update(3)  # while it sends: status sees 5 + 3
    run = read_last_run(path)
    assert run is not None and (run.run_id, run.enqueued, run.parts) == ("run-1", 8, 2)
    rest.update(95)
    run = read_last_run(path)
    assert run is not None and (run.run_id, run.enqueued, run.parts) == ("run-1", 100, 2)


def test_a_run_from_the_start_or_of_another_source_begins_anew(tmp_path: Path) -> None:
    path = tmp_path / "last-run.json"
    recorder(path, "run-1", continues=False).update(5)
    recorder(path, "run-2", continues=False).update(7)  # the whole source again
    run = read_last_run(path)
    assert run is not None and (run.run_id, run.enqueued, run.parts) == ("run-2", 7, 1)
    recorder(path, "run-3", continues=True, source="other.jsonl").update(2)
    run = read_last_run(path)
    assert run is not None and (run.run_id, run.enqueued, run.source) == ("run-3", 2, "other.jsonl")


def test_an_old_state_file_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "last-run.json"
    path.write_text('{"run_id": "r", "enqueued": 4, "at": "t"}\n')
    run = read_last_run(path)
    assert run is not None and (run.enqueued, run.parts, run.source) == (4, 1, None)
