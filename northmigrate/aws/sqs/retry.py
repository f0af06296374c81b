"""One retry policy per kind of SQS call, through tenacity.

These retries sit above botocore's own (``aws.retry_mode``, which retries a whole call that
failed on the wire or was throttled): they are for what botocore cannot see, the entries a
batch call answered with ``Failed`` through no fault of the sender, and a call that still
failed after botocore gave up. A fatal error (no endpoint, no credentials, no access, no
queue: :func:`northmigrate.aws.clients.is_fatal`) is never retried. Waits are exponential with full
jitter, and there is no wait after the final attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import Retrying, stop_after_attempt, wait_random_exponential


@dataclass(frozen=True)
class Policy:
    """``attempts`` in all (the first included), waiting up to ``base_s * 2**n`` (full
    jitter) before attempt ``n + 2``, at most ``max_s``."""

    attempts: int
    base_s: float
    max_s: float

    def retrying(
        self, *, sleep: Callable[[float], None] = time.sleep, attempts: int | None = None
    ) -> Retrying:
        """A tenacity ``Retrying`` for attempts 2..N: the caller makes the first attempt
        itself (it costs tenacity's machinery nothing on the common path), then iterates
        this one; the caller's block raises to ask for another attempt."""
        return Retrying(
            stop=stop_after_attempt(max(1, (attempts or self.attempts) - 1)),
            wait=wait_random_exponential(multiplier=self.base_s, max=self.max_s),
            sleep=sleep,
            reraise=True,
        )


# Sending records (enqueue, redrive): a few quick tries, then the entry is reported.
SEND = Policy(attempts=5, base_s=0.1, max_s=2.0)
# Deleting, and setting visibility (acknowledgements, give-backs): as quick.
DELETE = Policy(attempts=5, base_s=0.1, max_s=2.0)
VISIBILITY = Policy(attempts=5, base_s=0.1, max_s=2.0)
# The heartbeat: its next round is the retry.
HEARTBEAT = Policy(attempts=1, base_s=0.0, max_s=0.0)
# Receiving: patient (an endpoint that blinks should not end a worker), and never hot.
RECEIVE = Policy(attempts=10, base_s=0.5, max_s=30.0)
# Single calls of the DLQ tools (receive, attributes): a few tries.
CALL = Policy(attempts=5, base_s=0.1, max_s=2.0)
