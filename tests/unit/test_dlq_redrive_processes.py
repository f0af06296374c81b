"""``dlq redrive --processes N`` on the moto server (the processes need an endpoint of their
own, not this process's in-process moto): one --max for all the processes, shares of --rate,
one total, one sight of each message over all the processes, a process killed mid-run, a
stop, an error."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, client, signal_and_wait
from rich.console import Console

from northmigrate.cli.dlq import _render_redrive
from northmigrate.config import AwsSettings
from northmigrate.dlq import parse_all, redrive
from northmigrate.dlq.budget import Budget
from northmigrate.dlq.processes import Job, SqsFactory, _Signals, redrive_processes
from northmigrate.dlq.report import RedriveReport
from northmigrate.errors import AwsError, InputError
from northmigrate.records import envelope

pytestmark = pytest.mark.timeout(300)


def test_one_max_shared_by_processes_is_never_passed_and_a_process_waits_for_its_own() -> None:
    """Two budgets on one shared count, as two processes of a run have: what one reserves
    the other cannot take; one with nothing reserved and nothing free is done at once (it
    does not wait for the other's reservations); what is given back can be taken again."""
    counts = multiprocessing.get_context("spawn").Array("q", 2)
    fast, slow = Budget(25, counts), Budget(25, counts)
    never = threading.Event()
    assert slow.reserve(10, never) == 10
    assert [fast.reserve(10, never) for _ in range(2)] == [10, 5]
    fast.settle(15, 15)
    assert fast.reserve(10, never) == 0  # done: the 10 left are the other's
    slow.settle(10, 4)  # 6 given back (not matching, not sent)
    assert fast.reserve(10, never) == 6
    fast.settle(6, 6)
    assert list(counts) == [25, 0] and fast.exhausted and slow.exhausted
    assert slow.reserve(10, never) == 0


def test_a_stop_signal_never_waits_for_a_lock_the_main_thread_holds() -> None:
    """The handler runs in the main thread, which may be inside the stop event's own
    methods when the signal lands (a process stopped just as it finished deadlocked so)."""
    stop = threading.Event()
    signals = _Signals(stop, orphaned=lambda: False)
    handled = threading.Event()

    def main_thread_inside_the_event() -> None:
        with stop._cond:  # what Event.set holds while it runs
            signals.handle(signal.SIGTERM)
        handled.set()

    inside = threading.Thread(target=main_thread_inside_the_event, daemon=True)
    inside.start()
    inside.join(5)
    assert handled.is_set(), "the handler waited for a lock its own thread holds"
    assert not stop.is_set()  # the watcher turns the flag into the stop
    threading.Thread(target=signals.watch, daemon=True).start()
    assert stop.wait(30)
    signals.handle(signal.SIGINT)  # Ctrl-C: a stop
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C again: abort
        signals.handle(signal.SIGINT)


def test_a_process_whose_parent_died_stops() -> None:
    stop = threading.Event()
    signals = _Signals(stop, orphaned=lambda: True)
    threading.Thread(target=signals.watch, daemon=True).start()
    assert stop.wait(30)


def test_the_table_shows_the_processes_and_the_dead() -> None:
    report = RedriveReport("work-dlq", "work", moved=7)
    report.processes = [{"index": 0, "moved": 7}, {"index": 1, "died": True, "exit_code": -9}]
    console = Console(record=True, width=100)
    _render_redrive(report, console)
    text = console.export_text()  # (export_text clears what it exported)
    assert "processes" in text and "2 (1 died)" in text


def fill(sqs: Any, url: str, ids: list[str], reason: str = "PermanentError: x") -> None:
    attrs = {envelope.ATTR_REASON: {"DataType": "String", "StringValue": reason}}
    for start in range(0, len(ids), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": envelope.Envelope("m", rid, {"id": rid, "n": 1}).to_body(),
                "MessageAttributes": attrs,
            }
            for i, rid in enumerate(ids[start : start + 10])
        ]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def drained(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every envelope of a queue, received until empty and deleted."""
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        )
        messages = got.get("Messages", [])
        if not messages:
            return out
        out += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def ids_in(sqs: Any, url: str) -> Counter[str]:
    """Every record id of a queue, received until empty and deleted."""
    return Counter(body["record_id"] for body in drained(sqs, url))


def settled(sqs: Any, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
            return
        assert time.monotonic() < deadline, "messages still in flight"
        time.sleep(0.25)


@pytest.fixture
def setup(moto_endpoint: str, tmp_path: Path) -> tuple[Any, str, str, SqsFactory]:
    sqs = client("sqs", moto_endpoint)
    name = tmp_path.name[-30:].replace("_", "-")
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    main = sqs.create_queue(QueueName=name)["QueueUrl"]
    factory = SqsFactory(AwsSettings(region="us-east-1", endpoint_url=moto_endpoint))
    return sqs, main, dlq, factory


def test_max_is_one_limit_for_all_and_reported_as_one_total(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    sqs, main, dlq, factory = setup
    ids = [f"R-{n}" for n in range(60)]
    fill(sqs, dlq, ids)
    job = Job(factory, dlq, main, max_messages=25, rate=400.0, concurrency=2)
    report = redrive_processes(sqs, job, 2)
    assert report.error is None and report.died == []
    assert [p["rate"] for p in report.processes] == [200.0, 200.0]
    assert report.moved == report.matched == 25
    assert sum(p["moved"] for p in report.processes) == 25
    assert report.ended == "max" and not report.interrupted
    data = report.to_dict()
    assert data["moved"] == 25 and len(data["processes"]) == 2
    settled(sqs, dlq)
    moved = drained(sqs, main)
    assert len({body["redrives"][-1]["run"] for body in moved}) == 1  # one run, one id
    in_main = Counter(body["record_id"] for body in moved)
    in_dlq = ids_in(sqs, dlq)
    assert sum(in_main.values()) == 25 and max(in_main.values()) == 1
    assert set(in_main) | set(in_dlq) == set(ids) and not set(in_main) & set(in_dlq)


def test_more_processes_than_max_start_only_as_many_as_max(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    sqs, main, dlq, factory = setup
    fill(sqs, dlq, [f"R-{n}" for n in range(5)])
    report = redrive_processes(sqs, Job(factory, dlq, main, max_messages=2, concurrency=1), 4)
    assert [p["index"] for p in report.processes] == [0, 1]
    assert report.moved == 2


class SlowSecondFactory:
    """The run's client, but the second process's sends take 2.5 s each (picklable)."""

    def __init__(self, factory: SqsFactory) -> None:
        self.factory = factory

    def __call__(self) -> Any:
        sqs = self.factory()
        if multiprocessing.current_process().name.endswith("-1"):
            send = sqs.send_message_batch

            def slow_send(**kwargs: Any) -> Any:
                time.sleep(2.5)
                return send(**kwargs)

            sqs.send_message_batch = slow_send
        return sqs


def test_a_slow_process_leaves_the_rest_of_max_to_a_fast_one(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    """--max is taken from together: the fast process moves more than half of it (a fixed
    share would have stopped it at 20, done and idle, while the slow one moved its 20)."""
    sqs, main, dlq, factory = setup
    fill(sqs, dlq, [f"R-{n}" for n in range(60)])
    job = Job(SlowSecondFactory(factory), dlq, main, max_messages=40, concurrency=1)
    report = redrive_processes(sqs, job, 2)
    assert report.error is None and report.ended == "max"
    moved = [p["moved"] for p in report.processes]
    assert sum(moved) == report.moved == 40 and moved[0] > 20, moved
    settled(sqs, dlq)
    assert sum(ids_in(sqs, main).values()) == 40 and sum(ids_in(sqs, dlq).values()) == 20


def test_each_message_is_seen_once_over_all_the_processes(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    """What one process read and did not move (no match) stays hidden until every process is
    done: a process that ends first (its share of --max moved) never hands it to another, and
    the total counts each message once."""
    sqs, main, dlq, factory = setup
    # one matching message early, one last: a process ends with the first while the other
    # still reads what does not match
    fill(sqs, dlq, [f"B-{n}" for n in range(6)], reason="KeyError: b")
    fill(sqs, dlq, ["A-0"], reason="ValueError: a")
    fill(sqs, dlq, [f"B-{n}" for n in range(6, 30)], reason="KeyError: b")
    fill(sqs, dlq, ["A-1"], reason="ValueError: a")
    where = tuple(parse_all(["reason~ValueError"]))
    job = Job(factory, dlq, main, conditions=where, max_messages=2, concurrency=1)
    report = redrive_processes(sqs, job, 2)
    assert report.error is None
    assert (report.moved, report.skipped, report.read) == (2, 30, 32), report.processes
    settled(sqs, dlq)
    in_main, in_dlq = ids_in(sqs, main), ids_in(sqs, dlq)
    assert in_main == Counter({"A-0": 1, "A-1": 1})
    assert set(in_dlq) == {f"B-{n}" for n in range(30)}


def test_a_process_killed_mid_run_is_reported_and_a_rerun_moves_the_rest(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    sqs, main, dlq, factory = setup
    ids = [f"R-{n}" for n in range(120)]
    fill(sqs, dlq, ids)
    job = Job(factory, dlq, main, rate=40.0, concurrency=2, visibility_timeout=2)
    pids: list[int] = []

    def kill_the_first_later(started: list[int]) -> None:
        pids.extend(started)

        def later() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # once both are moving
                depth = sqs.get_queue_attributes(
                    QueueUrl=main, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]["ApproximateNumberOfMessages"]
                if int(depth) >= 20:
                    break
                time.sleep(0.05)
            os.kill(started[0], signal.SIGKILL)

        threading.Thread(target=later, daemon=True).start()

    report = redrive_processes(sqs, job, 2, started=kill_the_first_later)
    assert len(pids) == 2
    assert [p["index"] for p in report.died] == [0]
    assert report.died[0]["signal"] == "SIGKILL" and report.ended == "died"
    assert report.to_dict()["processes"][0]["died"] is True
    assert report.moved < len(ids)  # the kill came before the end

    settled(sqs, dlq)  # what the killed process held is back
    again = redrive(sqs, dlq, main)  # the rest, by one process (the CLI's chaos test: two)
    assert again.failed == 0 and again.error is None
    settled(sqs, main)
    in_main, in_dlq = ids_in(sqs, main), ids_in(sqs, dlq)
    assert set(in_main) == set(ids)  # none lost
    assert in_dlq == Counter()
    # at least once: only what the killed process had sent but not deleted came twice
    assert sum(in_main.values()) - len(ids) <= 10 * job.concurrency


def test_a_stop_reaches_every_process_and_gives_back_what_they_hold(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    sqs, main, dlq, factory = setup
    ids = [f"R-{n}" for n in range(200)]
    fill(sqs, dlq, ids)
    stop = threading.Event()
    moved: list[int] = []

    def progress(report: Any) -> None:
        moved.append(report.moved)
        if report.moved >= 20:
            stop.set()

    job = Job(factory, dlq, main, rate=40.0, concurrency=2)
    report = redrive_processes(sqs, job, 2, stop=stop, progress=progress)
    assert report.interrupted and report.ended == "stop" and report.died == []
    assert 20 <= report.moved < len(ids)
    assert moved == sorted(moved)  # the total only grows
    settled(sqs, dlq, timeout=30)  # given back at once, not after a visibility timeout
    in_main, in_dlq = ids_in(sqs, main), ids_in(sqs, dlq)
    assert sum(in_main.values()) == report.moved
    assert set(in_main) | set(in_dlq) == set(ids) and not set(in_main) & set(in_dlq)


class BrokenFactory:
    """A client factory with a bug whose message quotes a record (picklable: module level)."""

    def __call__(self) -> Any:
        raise RuntimeError("bad record 123-45-6789")


def test_a_process_that_crashes_is_named_without_its_message_or_a_traceback(
    setup: tuple[Any, str, str, SqsFactory], capfd: pytest.CaptureFixture[str]
) -> None:
    sqs, main, dlq, _ = setup
    fill(sqs, dlq, [f"R-{n}" for n in range(10)])
    report = redrive_processes(sqs, Job(BrokenFactory(), dlq, main, concurrency=1), 2)
    assert [(p["crashed"], p["exit_code"]) for p in report.died] == [("RuntimeError", 70)] * 2
    assert report.ended == "died" and report.moved == 0
    err = capfd.readouterr().err
    assert "123-45-6789" not in err + str(report.to_dict()) and "Traceback" not in err
    settled(sqs, dlq, timeout=30)
    assert sum(ids_in(sqs, dlq).values()) == 10


def test_dry_run_counts_over_the_processes_and_moves_nothing(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    sqs, main, dlq, factory = setup
    ids = [f"R-{n}" for n in range(30)]
    fill(sqs, dlq, ids)
    report = redrive_processes(sqs, Job(factory, dlq, main, dry_run=True, concurrency=2), 2)
    assert (report.matched, report.moved, report.read) == (30, 0, 30)
    settled(sqs, dlq, timeout=30)  # every message visible again at once
    assert ids_in(sqs, main) == Counter() and set(ids_in(sqs, dlq)) == set(ids)


def test_an_error_in_a_process_is_the_run_s_error(setup: tuple[Any, str, str, SqsFactory]) -> None:
    sqs, main, dlq, factory = setup
    fill(sqs, dlq, [f"R-{n}" for n in range(10)])
    gone = main.rsplit("/", 1)[0] + "/no-such-queue"
    report = redrive_processes(sqs, Job(factory, dlq, gone, concurrency=1), 2)
    assert isinstance(report.error, AwsError) and report.ended == "error"
    assert report.moved == 0 and not report.interrupted
    settled(sqs, dlq, timeout=30)
    assert sum(ids_in(sqs, dlq).values()) == 10


def test_bad_arguments_are_refused_before_any_process_starts(
    setup: tuple[Any, str, str, SqsFactory],
) -> None:
    sqs, main, dlq, factory = setup
    with pytest.raises(InputError, match="--processes"):
        redrive_processes(sqs, Job(factory, dlq, main), 0)
    with pytest.raises(InputError, match="--max"):
        redrive_processes(sqs, Job(factory, dlq, main, max_messages=0), 2)
    with pytest.raises(InputError, match="--rate"):
        redrive_processes(sqs, Job(factory, dlq, main, rate=-1.0), 2)
    with pytest.raises(InputError, match="DLQ itself"):
        redrive_processes(sqs, Job(factory, dlq, dlq), 2)


def test_cli_processes_reports_one_total_in_json(project: Project) -> None:
    project.run("provision", check=True)
    sqs = project.client("sqs")
    fill(sqs, project.queue_url(project.dlq_name), [f"R-{n}" for n in range(30)])
    result = project.run("dlq", "redrive", "--processes", "2", "--max", "21", "--output", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["moved"] == 21 and data["failed"] == 0
    assert sum(p["moved"] for p in data["processes"]) == 21


@pytest.mark.parametrize("extra", [["--native"], ["--canary", "2"]])
def test_cli_processes_refuses_native_and_canary(project: Project, extra: list[str]) -> None:
    project.run("provision", check=True)
    result = project.cli("dlq", "redrive", "--processes", "2", *extra)
    assert result.returncode == 2
    assert "--processes" in result.stderr and "Traceback" not in result.stderr


def test_cli_ctrl_c_stops_every_process_and_exits_130(project: Project) -> None:
    """SIGINT to the command alone (not its process group): it passes the stop on."""
    project.run("provision", check=True)
    sqs = project.client("sqs")
    dlq, main = project.queue_url(project.dlq_name), project.queue_url()
    ids = [f"R-{n}" for n in range(200)]
    fill(sqs, dlq, ids)
    process = project.popen("dlq", "redrive", "--processes", "2", "--rate", "20", "-o", "json")
    deadline = time.monotonic() + 120
    while project.depth()["visible"] < 10:  # both processes are moving
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    out, err = signal_and_wait(process, signal.SIGINT)
    assert process.returncode == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True and data["ended"] == "stop"
    assert [p["ended"] for p in data["processes"]] == ["stop", "stop"]
    settled(sqs, dlq, timeout=30)  # given back at once
    in_main, in_dlq = ids_in(sqs, main), ids_in(sqs, dlq)
    assert sum(in_main.values()) == data["moved"] < len(ids)
    assert set(in_main) | set(in_dlq) == set(ids) and not set(in_main) & set(in_dlq)
