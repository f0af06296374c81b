"""Backoff, rate limiting and the heartbeat, on a fake clock."""

from __future__ import annotations

import random
import threading
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from northmigrate.config import QueueSettings, WorkerSettings
from northmigrate.consume.backoff import (
    SQS_MAX_DELAY_S,
    SQS_MAX_VISIBILITY_S,
    TokenBucket,
    retry_delay,
)
from northmigrate.consume.heartbeat import Heartbeat


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@given(
    attempt=st.integers(min_value=-3, max_value=10_000),
    base=st.floats(min_value=0, max_value=1e6),
    cap=st.floats(min_value=0, max_value=1e6),
    visibility=st.integers(min_value=0, max_value=43_200),
    seed=st.integers(),
)
def test_retry_delay_stays_within_every_bound(
    attempt: int, base: float, cap: float, visibility: int, seed: int
) -> None:
    delay = retry_delay(
        attempt, base_s=base, max_s=cap, visibility_timeout_s=visibility, rng=random.Random(seed)
    )
    ceiling = min(base * 2.0 ** min(max(attempt, 1) - 1, 40), cap, visibility, SQS_MAX_VISIBILITY_S)
    assert 0 <= delay <= min(round(cap + 0.5), visibility, SQS_MAX_VISIBILITY_S)
    assert delay >= round(ceiling / 2) - 1  # the half kept fixed: patience


def test_with_the_defaults_a_record_outlasts_an_outage_of_a_few_minutes() -> None:
    """The least time a record's tries take (every draw at its lowest): a retried copy's
    backoff is bounded by SQS's 900 s delay, a retry in place by the visibility timeout."""
    settings = WorkerSettings()
    queue = QueueSettings(name="q")
    retries = range(1, queue.max_receive_count)  # the last try dead-letters, it waits not

    def least(bound: int) -> int:
        lowest = random.Random(0)
        lowest.uniform = lambda a, b: a  # type: ignore[method-assign]
        return sum(
            retry_delay(
                n,
                base_s=settings.backoff_base_s,
                max_s=settings.backoff_max_s,
                visibility_timeout_s=bound,
                rng=lowest,
            )
            for n in retries
        )

    assert least(SQS_MAX_DELAY_S) >= 225  # 15 + 30 + 60 + 120 s
    assert least(queue.visibility_timeout) >= 105  # 15 + 30 + 30 + 30 s


def test_retry_delay_grows_exponentially_with_jitter() -> None:
    rng = random.Random(1)

    def draws(attempt: int) -> list[int]:
        return [
            retry_delay(attempt, base_s=1, max_s=900, visibility_timeout_s=600, rng=rng)
            for _ in range(400)
        ]

    first, fifth, tenth = draws(1), draws(5), draws(10)
    assert set(first) <= {0, 1}
    assert max(fifth) <= 16 and min(fifth) <= 9 and max(fifth) >= 15  # uniform over 8..16
    assert min(fifth) >= 8 and min(tenth) >= 256
    assert max(tenth) <= 512 and len(set(tenth)) > 100
    assert sum(tenth) / len(tenth) > 4 * sum(fifth) / len(fifth)
    capped = [
        retry_delay(20, base_s=1, max_s=900, visibility_timeout_s=30, rng=rng) for _ in range(200)
    ]
    assert max(capped) == 30 and min(capped) >= 15  # the visibility timeout bounds it


def test_token_bucket_paces_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, wait=clock.sleep)
    start = clock.now
    taken = 0
    while taken < 50:
        taken += bucket.take(10)
    # one token at the start, then five a second: 49 more tokens take about 9.8 s
    assert 9.5 <= clock.now - start <= 10.5


def test_token_bucket_refunds_and_gives_up_on_stop() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=4, clock=clock, wait=clock.sleep)
    clock.now += 10
    assert bucket.take(10) == 4  # at most the burst
    bucket.refund(3)
    assert bucket.take(10) == 3
    stop = threading.Event()
    stop.set()
    assert bucket.take(1, stop) == 0


class RecordingSqs:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail or set()

    def change_message_visibility_batch(
        self, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls.append(Entries)
        ok = [{"Id": e["Id"]} for e in Entries if e["ReceiptHandle"] not in self.fail]
        bad = [
            {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True}
            for e in Entries
            if e["ReceiptHandle"] in self.fail
        ]
        return {"Successful": ok, "Failed": bad}


def test_heartbeat_extends_held_messages_every_third_of_the_timeout() -> None:
    clock, sqs = FakeClock(), RecordingSqs()
    beat = Heartbeat(sqs, "url", 30, clock=clock)
    for n in range(12):
        beat.add(f"k{n}", f"r{n}")
    assert beat.tick() == 0 and sqs.calls == []  # nothing due yet
    clock.now += 9.9
    assert beat.tick() == 0
    clock.now += 0.1  # 10 s: a third of 30
    assert beat.tick() == 12
    assert [len(c) for c in sqs.calls] == [10, 2]  # in batches of ten
    assert {e["VisibilityTimeout"] for c in sqs.calls for e in c} == {30}
    sqs.calls.clear()
    beat.remove("k0")
    clock.now += 5
    assert beat.tick() == 0  # extended 5 s ago: not due
    clock.now += 5
    assert beat.tick() == 11
    assert "r0" not in {e["ReceiptHandle"] for c in sqs.calls for e in c}


def test_heartbeat_never_asks_past_twelve_hours() -> None:
    clock, sqs = FakeClock(), RecordingSqs()
    beat = Heartbeat(sqs, "url", 3600, clock=clock)
    beat.add("k", "r")
    clock.now += SQS_MAX_VISIBILITY_S - 600
    beat.tick()
    assert sqs.calls[-1][0]["VisibilityTimeout"] == 599
    clock.now += 1200
    calls = len(sqs.calls)
    beat.tick()
    assert len(sqs.calls) == calls  # nothing left to extend


def test_heartbeat_survives_a_message_it_cannot_extend() -> None:
    clock, sqs = FakeClock(), RecordingSqs(fail={"r1"})
    beat = Heartbeat(sqs, "url", 3, clock=clock)
    beat.add("k1", "r1")
    beat.add("k2", "r2")
    clock.now += 1
    assert beat.tick() == 1
    assert beat.failed == 1 and beat.extended == 1


def test_on_the_defaults_a_bug_reaches_the_dlq_in_seconds_and_an_outage_waits_minutes() -> None:
    """The three kinds keep apart on the defaults: the tries of a record that meets a bug
    (``record``) add up to seconds, whatever the draw, not the minutes an outage's tries
    wait; a throttled record comes back after seconds however many times it was throttled."""
    from northmigrate.consume.backoff import delays_for
    from northmigrate.failures import OUTAGE, RECORD, THROTTLED

    tries = QueueSettings(name="q").max_receive_count
    for seed in range(50):
        delays = delays_for(WorkerSettings(), random.Random(seed))
        waits = [delays(attempt, RECORD) for attempt in range(1, tries)]
        assert 4 <= sum(waits) <= 12, waits  # the last try is dead-lettered, not delayed
        patience = [delays(attempt, OUTAGE) for attempt in range(1, tries)]
        assert sum(patience) >= 220, patience  # at least 3 min 45 s, less rounding
        assert all(5 <= delays(attempt, THROTTLED) <= 10 for attempt in (1, 5, 50))
