"""Pacing: the per-record retry backoff (by the failure's kind), and the token bucket behind
``worker --rate``."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from northmigrate.config import WorkerSettings
from northmigrate.failures import OUTAGE, RECORD, THROTTLED

SQS_MAX_VISIBILITY_S = 43_200  # 12 hours: the most SQS allows
SQS_MAX_DELAY_S = 900  # the longest DelaySeconds SQS takes: a retry's copy waits at most this


def retry_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    visibility_timeout_s: int,
    rng: random.Random | None = None,
) -> int:
    """Seconds before a failed record is tried again: exponential backoff, equal jitter.

    The ceiling doubles with each attempt (``base_s * 2**(attempt-1)``) and is bounded by
    ``max_s``, the given visibility bound and SQS's 12 hours; the delay is drawn uniformly
    between half the ceiling and the ceiling (equal jitter). The jitter spreads a fleet of
    failing records out instead of hammering a service that is down in step; the half kept
    fixed is the patience: the tries of a record last a known least time (with the
    defaults, 30 s doubling over 5 tries: at least 3 min 45 s), so a short outage of the new
    service does not use them up.
    """
    exponent = min(max(attempt, 1) - 1, 40)
    ceiling = min(base_s * (2.0**exponent), max_s, float(visibility_timeout_s))
    ceiling = max(0.0, min(ceiling, float(SQS_MAX_VISIBILITY_S)))
    draw = (rng or random).uniform(ceiling / 2, ceiling)
    return round(draw)


@dataclass
class RetryDelays:
    """The backoff of each failure kind (``[worker]``'s ``*backoff*`` keys).

    - ``outage``: ``base_s`` doubling, at most ``max_s`` (30 s to 15 min by default): the
      tries of a record outlast a short outage;
    - ``record``: ``record_base_s`` doubling, at most ``record_max_s`` (1 s to 4 s): a bug
      reaches the DLQ in seconds (five tries: between 5.5 and 11 s);
    - ``throttled``: between half and all of ``throttle_s`` (10 s), whatever the attempt (a
      throttled try is not charged).

    Called as ``delays(attempt, kind)``, with ``ceiling_s`` for a retry in place (the
    queue's visibility timeout).
    """

    base_s: float = 30.0
    max_s: float = 900.0
    record_base_s: float = 1.0
    record_max_s: float = 4.0
    throttle_s: float = 10.0
    rng: random.Random | None = None

    def __call__(self, attempt: int, kind: str = OUTAGE, ceiling_s: int = SQS_MAX_DELAY_S) -> int:
        if kind == THROTTLED:
            top = max(0.0, min(self.throttle_s, float(ceiling_s)))
            return round((self.rng or random).uniform(top / 2, top))
        base, top = (
            (self.record_base_s, self.record_max_s)
            if kind == RECORD
            else (
                self.base_s,
                self.max_s,
            )
        )
        return retry_delay(
            attempt, base_s=base, max_s=top, visibility_timeout_s=ceiling_s, rng=self.rng
        )


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; thread-safe.

    ``take(n)`` waits until at least one token is there and takes up to ``n`` whole tokens;
    ``refund`` gives back what was not used. Waiting ends early when ``stop`` is set.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._wait = wait or time.sleep
        self._tokens = 1.0  # start with one: no burst at start-up
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self, n: int, stop: threading.Event | None = None) -> int:
        """Up to ``n`` tokens (at least 1), or 0 when ``stop`` was set while waiting."""
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1.0 - 1e-9:  # float dust must not stall the bucket
                    got = max(1, min(n, int(self._tokens + 1e-9)))
                    self._tokens = max(0.0, self._tokens - got)
                    return got
                needed = (1.0 - self._tokens) / self.rate
            if stop is not None and stop.is_set():
                return 0
            self._wait(min(max(needed, 0.001), 0.25))

    def refund(self, n: int) -> None:
        if n > 0:
            with self._lock:
                self._tokens = min(self.burst, self._tokens + n)


def delays_for(worker: WorkerSettings, rng: random.Random | None = None) -> RetryDelays:
    """The retry delays of a ``[worker]`` section."""
    return RetryDelays(
        base_s=worker.backoff_base_s,
        max_s=worker.backoff_max_s,
        record_base_s=worker.record_backoff_base_s,
        record_max_s=worker.record_backoff_max_s,
        throttle_s=worker.throttle_backoff_s,
        rng=rng,
    )
