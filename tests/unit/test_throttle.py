"""Throttling slows the consumers down: the guard halves the tap's limit (never below 2),
raises it step by step once the throttling stops, gives an operator's limit back, and calls
throttling that persists at the floor an outage. Against the real tap on moto, a fake clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.aws.sqs.message import InMessage
from northmigrate.cli.app import run
from northmigrate.config import GuardSettings, MigrationSettings, QueueSettings, Settings
from northmigrate.consume.guard import Guard, Trip
from northmigrate.consume.processing import Outcome, Status
from northmigrate.consume.tap import Tap
from northmigrate.consume.throttle import Throttle
from northmigrate.control.provision import provision

MESSAGE = InMessage("m", "r", "b", 1)
BY = "guard (worker test:1)"


def throttled() -> Outcome:
    return Outcome(
        Status.REQUEUED, MESSAGE, reason="ThrottlingException: slow", error_kind="throttled"
    )


def ok() -> Outcome:
    return Outcome(Status.SUCCEEDED, MESSAGE)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tap(mocked_aws: None) -> Tap:
    aws = AwsClients()
    settings = Settings(
        queue=QueueSettings(name="q"), migration=MigrationSettings(plugin="tests:migration")
    )
    provision(aws, settings, None)
    return Tap(aws, Queues(aws.client("sqs"), settings.queue))


def step(throttle: Throttle, clock: Clock, outcomes: list[Outcome]) -> bool:
    """One step of outcomes (10 s), the last one ending the step."""
    said = False
    for outcome in outcomes:
        said = throttle.record(outcome) or said
    clock.now += 10.0
    return throttle.record(ok()) or said


def make(tap: Tap, clock: Clock, start: int = 40, **settings: Any) -> Throttle:
    options = GuardSettings(**({"throttle_step_s": 10, "throttle_outage_s": 60} | settings))
    return Throttle(options, tap, by=BY, start=lambda rate: start, clock=clock)


def test_throttling_halves_the_limit_down_to_the_floor_and_says_who_and_why(tap: Tap) -> None:
    clock = Clock()
    throttle = make(tap, clock)
    limits = []
    for _ in range(6):
        step(throttle, clock, [throttled(), ok()])
        limits.append(tap.state().limit)
    assert limits == [20, 10, 5, 2, 2, 2]  # never below SQS's least maximum concurrency
    state = tap.state()
    assert state.limit_by == BY and state.limited_by_guard
    assert state.limit_reason is not None and state.limit_reason.startswith("throttled: ")
    assert state.limit_was is None  # no limit before: lifted at the end


def test_the_limit_rises_step_by_step_then_is_lifted(tap: Tap) -> None:
    clock = Clock()
    throttle = make(tap, clock)
    step(throttle, clock, [throttled()])
    step(throttle, clock, [throttled()])
    assert tap.state().limit == 10
    limits = []
    for _ in range(5):
        step(throttle, clock, [ok()])
        limits.append(tap.state().limit)
    assert limits == [15, 22, 33, None, None]  # by half each step, then no limit at all


def test_an_operators_limit_is_the_ceiling_and_is_given_back(tap: Tap) -> None:
    tap.limit(8)
    clock = Clock()
    throttle = make(tap, clock, start=500)
    step(throttle, clock, [throttled()])
    state = tap.state()
    assert (state.limit, state.limit_was, state.limited_by_guard) == (4, 8, True)
    step(throttle, clock, [ok()])
    assert tap.state().limit == 6
    step(throttle, clock, [ok()])
    state = tap.state()
    assert (state.limit, state.limit_by, state.limit_was) == (8, "operator", None)
    step(throttle, clock, [ok()])
    assert tap.state().limit == 8  # never above the operator's


def test_throttling_that_persists_at_the_floor_is_an_outage(tap: Tap) -> None:
    clock = Clock()
    trips: list[Trip] = []
    settings = GuardSettings(throttle_step_s=10, throttle_outage_s=30, min_records=1)
    throttle = Throttle(settings, tap, by=BY, start=lambda rate: 4, clock=clock)
    guard = Guard(settings, by=BY, on_trip=trips.append, throttle=throttle)
    for _ in range(4):  # 4 -> 2, then at the floor
        guard.record(throttled())
        clock.now += 10.0
        guard.record(throttled())
    assert trips == []
    for _ in range(3):
        clock.now += 10.0
        guard.record(throttled())
    [trip] = trips
    assert trip.kind == "outage"
    assert trip.reason == "outage: throttled at the lowest limit for 30 s"


def test_a_closed_tap_is_left_alone(tap: Tap) -> None:
    tap.close(reason="maintenance")
    clock = Clock()
    throttle = make(tap, clock)
    step(throttle, clock, [throttled()])
    assert tap.state().limit is None


def test_tap_status_shows_the_guards_limit_who_and_why(
    tap: Tap,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "northmigrate.toml").write_text(
        '[aws]\nregion = "us-east-1"\n[queue]\nname = "q"\n'
        '[migration]\nplugin = "tests:migration"\n'
    )
    clock = Clock()
    step(make(tap, clock), clock, [throttled(), ok()])
    capsys.readouterr()
    assert run(["tap", "status"]) == 0
    out = capsys.readouterr().out
    assert "limit: 20" in out
    assert f"limit 20 set by {BY}: throttled: 1 of 3 tries in 10 s" in out
    assert run(["tap", "status", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["limit"], data["limit_by"]) == (20, BY)
    assert data["limit_reason"] == "throttled: 1 of 3 tries in 10 s"
