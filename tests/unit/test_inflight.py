"""The adaptive limit of calls in flight (northmigrate.aws.inflight), driven by a simulated
endpoint on an injected clock and CPU clock: deterministic, nothing timed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from northmigrate.aws.inflight import InFlight, Tuning


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """Calls of 10 units each. With ``n`` calls in flight the client completes
    ``rate(n)`` calls a second and uses ``cpu(n)`` of one core; ``strained(i)`` says
    whether call ``i`` was throttled."""

    def __init__(
        self,
        rate: Callable[[int], float],
        cpu: Callable[[int], float] = lambda n: 0.3,
        strained: Callable[[int], bool] = lambda i: False,
    ) -> None:
        self.rate, self.cpu, self.strained = rate, cpu, strained
        self.clock, self.cpu_clock = Clock(), Clock()
        self.calls = 0

    def controller(self, cap: int, **tuning: Any) -> InFlight:
        return InFlight(cap, tuning=Tuning(**tuning), clock=self.clock, cpu=self.cpu_clock)

    def run(self, limiter: InFlight, calls: int, *, keep_full: bool = True) -> list[int]:
        """Complete ``calls`` calls, keeping the limit full; the limit after each call."""
        seen = []
        for _ in range(calls):
            while keep_full and limiter.in_flight < limiter.limit:
                assert limiter.acquire()
            if not keep_full:
                assert limiter.acquire()
            n = limiter.in_flight
            dt = 1 / self.rate(n)
            self.clock.now += dt
            self.cpu_clock.now += dt * self.cpu(n)
            self.calls += 1
            limiter.release(10, strained=self.strained(self.calls))
            seen.append(limiter.limit)
        return seen


def latency_bound(latency_s: float, cpu_per_call_s: float) -> Endpoint:
    """A distant endpoint: n calls in flight complete n per round trip, until the client's
    CPU (one core) is the limit."""

    def rate(n: int) -> float:
        return min(n / latency_s, 1 / cpu_per_call_s)

    def cpu(n: int) -> float:
        return min(1.0, n / latency_s * cpu_per_call_s)

    return Endpoint(rate, cpu)


def test_the_limit_grows_to_the_cap_while_the_rate_grows() -> None:
    far = latency_bound(0.08, 0.0001)  # 80 ms away, CPU far from the limit
    limiter = far.controller(64)
    assert limiter.limit == 2
    limits = far.run(limiter, 3_000)
    first_64 = limits.index(64)
    assert limits[:first_64] == sorted(limits[:first_64])  # slow start: it only grew
    assert first_64 < 200
    # Then it stays at the cap, but for a probe downwards now and then (rejected).
    late = limits[-1_000:]
    assert min(late) >= 48 and late.count(64) / len(late) > 0.7


def test_the_limit_stops_near_the_knee_when_the_cpu_is_the_limit() -> None:
    # 20 ms away, 2 ms of client CPU per call: 10 calls in flight use the whole core.
    near = latency_bound(0.02, 0.002)
    limiter = near.controller(64)
    limits = near.run(limiter, 5_000)
    assert 8 <= limits[-1] <= 16
    assert max(limits[-1_000:]) <= 20  # it does not wander off to the cap


def test_the_limit_does_not_grow_when_growing_does_not_pay() -> None:
    flat = Endpoint(lambda n: 500.0)  # as fast with 1 call in flight as with 64
    limiter = flat.controller(64)
    limits = flat.run(limiter, 5_000)
    assert max(limits) <= 4  # one doubling to 4, rejected (it keeps half its step)
    assert limits[-1] <= 3


def test_a_saturated_cpu_brings_the_limit_down_to_what_moves_as_much() -> None:
    # Anything over 2 calls in flight moves no more and the process uses its whole core.
    busy = Endpoint(lambda n: 400.0 * min(n, 2), cpu=lambda n: 1.0)
    limiter = busy.controller(64, start=16)
    limits = busy.run(limiter, 5_000)
    assert limits[-1] == 2 or limits[-1] == 3
    assert min(limits) >= 1


def test_a_strained_call_halves_the_limit_once_a_round() -> None:
    far = latency_bound(0.05, 0.0001)
    limiter = far.controller(64, start=32)
    far.run(limiter, 10)
    assert limiter.limit == 32
    far.strained = lambda i: i in (11, 12, 13)  # three throttled calls land together
    far.run(limiter, 3)
    assert limiter.limit == 16  # halved once, not three times
    assert limiter.decreases == 1


def test_throttling_keeps_the_limit_low_and_it_recovers_after() -> None:
    def throttled(i: int) -> bool:
        return i < 2_000 and i % 20 == 0  # one call in twenty throttled

    far = latency_bound(0.05, 0.0001)
    far.strained = throttled
    limiter = far.controller(64)
    limits = far.run(limiter, 2_000)
    assert max(limits[500:]) < 32
    assert limiter.decreases > 10
    limits = far.run(limiter, 4_000)  # the throttling is over
    assert limits[-1] == 64  # additive steps up to the cap again


def test_the_cap_and_the_floor_hold() -> None:
    always = Endpoint(lambda n: 100.0 * n, strained=lambda i: True)
    limiter = always.controller(8, start=8)
    limits = always.run(limiter, 200)
    assert min(limits) == 1 and limiter.limit == 1
    assert InFlight(1, tuning=Tuning(start=2)).limit == 1
    fast = latency_bound(0.02, 0.00001)
    capped = fast.controller(5)
    assert max(fast.run(capped, 2_000)) == 5


def test_a_round_where_the_limit_did_not_bind_changes_nothing() -> None:
    # The work comes one call at a time: the limit is never reached.
    slow_source = Endpoint(lambda n: 50.0)
    limiter = slow_source.controller(64, start=4)
    limits = slow_source.run(limiter, 1_000, keep_full=False)
    assert set(limits) == {4}


def test_calls_that_did_nothing_count_as_calls_without_units() -> None:
    limiter = InFlight(8, tuning=Tuning(start=2, round_calls=4, round_s=0.0), clock=Clock())
    for _ in range(4):
        assert limiter.acquire()
        limiter.release(0)
    assert limiter.limit == 2 and limiter.in_flight == 0


def test_acquire_waits_for_a_free_slot_and_gives_up_on_stop() -> None:
    limiter = InFlight(1, tuning=Tuning(start=1))
    assert limiter.acquire()
    stop = threading.Event()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire(stop.is_set, 0.01)))
    waiter.start()
    waiter.join(0.05)
    assert waiter.is_alive()  # the slot is taken
    limiter.release(10)
    waiter.join(10)
    assert got == [True] and limiter.in_flight == 1
    stop.set()
    assert limiter.acquire(stop.is_set) is False
    assert limiter.in_flight == 1


def test_an_exception_in_a_slot_is_a_strained_call() -> None:
    far = latency_bound(0.05, 0.0001)
    limiter = far.controller(64, start=16)
    with pytest.raises(RuntimeError), limiter.slot() as slot:
        slot.units = 10
        raise RuntimeError("endpoint gone")
    assert limiter.limit == 8 and limiter.in_flight == 0
    with limiter.slot() as slot:
        slot.units = 10
    assert limiter.in_flight == 0
