"""How many calls in flight: a limit that adapts to what the endpoint gives.

Every batch call of enqueue, ``dlq redrive`` and the worker's receivers and acknowledgers
takes a slot (:meth:`InFlight.acquire`) and gives it back with what it achieved
(:meth:`InFlight.release`: units done, such as records sent or messages moved, and whether
the call was *strained*: throttled, retried or failed). The number of slots, the limit,
starts small and moves by rounds, additive increase and multiplicative decrease (AIMD) with a
throughput test:

- a round is at least ``3 * limit`` calls and ``Tuning.round_s`` seconds (about three round
  trips, however far the endpoint);
- a strained call halves the limit at once (``Tuning.backoff``), at most once a round, and
  the limit then holds for ``Tuning.hold_rounds`` rounds;
- a round in which the limit bound (as many calls in flight as the limit allowed) tells
  whether growing paid: after a probe (a larger limit) the round's rate must beat the rate
  before it by ``Tuning.gain``, else the limit goes back to what it was and holds; it starts
  by doubling (slow start: a failed doubling keeps half its step) and grows by a quarter
  once a probe failed or a call was strained;
- it grows only while the process uses less than ``Tuning.cpu_ceiling`` of one core (more
  calls in flight cannot help a client whose CPU is the limit: Python runs one thread at a
  time); at the ceiling it probes downwards instead, and keeps a smaller limit that moves
  as much (within ``Tuning.gain``), which saves the CPU that more threads in flight cost.

Errors are asymmetric, and so are the rules: a limit too low for a far endpoint costs most
of the rate, one too high costs a few threads waiting (on loopback the work itself, not the
limit, bounds the calls in flight), so without a busy CPU the limit only probes upwards.

The cap (``--concurrency``) is never passed; the floor is one call. A round in which the
limit did not bind (the work came slower than the calls could take it) teaches nothing
and changes nothing. The clock and the CPU clock are injected: the rules are tested by
feeding rounds, never by timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MAX_IN_FLIGHT = 64  # the default cap of enqueue's and redrive's batches in flight


@dataclass(frozen=True)
class Tuning:
    start: int = 2  # the limit of the first round
    round_s: float = 0.15  # the shortest round
    round_calls: int = 4  # the fewest calls in a round
    gain: float = 0.1  # a probe must raise the rate by this share to be kept
    cpu_ceiling: float = 0.9  # share of one core above which the limit does not grow
    backoff: float = 0.5  # the limit's factor after a strained call
    hold_rounds: int = 2  # rounds a limit holds after a failed probe or a decrease


@dataclass
class Slot:
    """One call's account, filled in by its caller inside :meth:`InFlight.slot`."""

    units: int = 0
    strained: bool = False


@dataclass
class _Round:
    started: float
    cpu: float
    calls: int = 0
    units: int = 0
    bound: bool = False  # the limit was reached at some point of the round
    after_cut: bool = False  # the round began with a decrease


class InFlight:
    """The adaptive limit of calls in flight; thread-safe. See the module docstring."""

    def __init__(
        self,
        cap: int,
        *,
        tuning: Tuning = Tuning(),
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.cap = max(1, cap)
        self.tuning = tuning
        self._clock = clock
        self._cpu = cpu
        self._cond = threading.Condition()
        self._limit = min(self.cap, max(1, tuning.start))
        self._in_flight = 0
        self._round = _Round(clock(), cpu())
        self._slow_start = True
        self._before: tuple[int, float] | None = None  # (limit, rate) before a probe
        self._rate: float | None = None  # the last round's rate at the current limit
        self._hold = 0  # rounds to wait before the next probe
        self.peak = self._limit  # the highest limit reached (for reports and benchmarks)
        self.decreases = 0  # strained calls that lowered the limit

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self, stop: Callable[[], bool] | None = None, poll_s: float = 0.1) -> bool:
        """Wait for a free slot and take it; False (nothing taken) once ``stop()`` is true."""
        with self._cond:
            while self._in_flight >= self._limit:
                self._round.bound = True
                if stop is not None and stop():
                    return False
                self._cond.wait(poll_s)
            self._in_flight += 1
            if self._in_flight >= self._limit:
                self._round.bound = True
            return True

    def release(self, units: int = 0, *, strained: bool = False) -> None:
        """Give a slot back: the call did ``units`` of work; ``strained`` if it was
        throttled, retried or failed."""
        with self._cond:
            self._in_flight -= 1
            before = self._limit
            self._account(units, strained)
            if self._limit > before:
                self._cond.notify(self._limit - before + 1)
            else:
                self._cond.notify()

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """A slot for one call (waits for one); an exception inside counts as strained."""
        self.acquire()
        account = Slot()
        try:
            yield account
        except BaseException:
            account.strained = True
            raise
        finally:
            self.release(account.units, strained=account.strained)

    # -- the rules ------------------------------------------------------------------------

    def _account(self, units: int, strained: bool) -> None:
        r = self._round
        r.calls += 1
        r.units += units
        t = self.tuning
        now = self._clock()
        elapsed = now - r.started
        over = r.calls >= max(t.round_calls, 3 * self._limit) and elapsed >= max(t.round_s, 1e-9)
        if strained:
            if over or not r.after_cut:  # at most once a round: the old limit's calls land
                self._decrease()
            return
        if not over:
            return
        cpu_share = (self._cpu() - r.cpu) / elapsed
        self._new_round(now)
        if r.bound:
            self._decide(r.units / elapsed, cpu_share)

    def _decide(self, rate: float, cpu_share: float) -> None:
        t = self.tuning
        if self._before is not None:  # this round measured a probe
            limit, rate_before = self._before
            self._before = None
            # A probe that adds a quarter or more must add ``gain``; a smaller one less.
            wanted = t.gain * min(1.0, 4 * (self._limit - limit) / limit)
            if self._limit > limit and rate >= rate_before * (1 + wanted):
                self._rate = rate  # it paid: on while it pays and the CPU allows
                if cpu_share < t.cpu_ceiling:
                    self._probe_up()
                else:
                    self._hold = t.hold_rounds
                return
            if self._limit < limit and rate >= rate_before * (1 - t.gain):
                self._rate = rate  # as much with fewer: keep the smaller limit
                self._hold = t.hold_rounds
                return
            # Back to what it was, and hold; a doubling that failed keeps half its step (a
            # round on a busy machine can miss by noise alone, and too low a limit costs a
            # far endpoint far more than a few threads too many cost a near one).
            doubled = self._slow_start and self._limit > limit
            self._set(limit + (self._limit - limit) // 2 if doubled else limit)
            self._slow_start = False
            self._rate = None
            self._hold = t.hold_rounds
            return
        self._rate = rate
        if self._hold > 0:
            self._hold -= 1
            return
        if cpu_share < t.cpu_ceiling:
            self._probe_up()
        elif self._limit > 1:
            self._slow_start = False
            self._before = (self._limit, rate)
            self._set(self._limit - self._step())

    def _probe_up(self) -> None:
        if self._limit >= self.cap:
            self._hold = self.tuning.hold_rounds
            return
        assert self._rate is not None
        self._before = (self._limit, self._rate)
        self._set(self._limit * 2 if self._slow_start else self._limit + self._step())

    def _step(self) -> int:
        return max(1, self._limit // 4)

    def _decrease(self) -> None:
        self._set(int(self._limit * self.tuning.backoff))
        self.decreases += 1
        self._slow_start = False
        self._before = None
        self._rate = None
        self._hold = self.tuning.hold_rounds
        self._new_round(self._clock(), after_cut=True)

    def _new_round(self, now: float, *, after_cut: bool = False) -> None:
        self._round = _Round(now, self._cpu(), after_cut=after_cut)

    def _set(self, limit: int) -> None:
        self._limit = min(self.cap, max(1, limit))
        self.peak = max(self.peak, self._limit)
