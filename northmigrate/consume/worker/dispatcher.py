"""The dispatcher: the pool of threads that run the per-record path on each message.

``concurrency`` threads take the next *group* of waiting messages and run
:class:`~northmigrate.consume.processing.Processor` on each, settling every outcome with the
acknowledger. A group is one message on a standard queue; on a FIFO queue it is a message
group, run one message after the other, in order, and a retry holds the rest of its group
back by handing it back to SQS (which gives them out again, in order, once the failed
message is resolved). Once the worker stops starting, waiting messages are handed back.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable

from northmigrate.aws.sqs.message import InMessage
from northmigrate.consume.processing import Outcome, Processor, Status
from northmigrate.consume.worker.acknowledger import Acknowledger
from northmigrate.failures import classify

log = logging.getLogger("northmigrate.worker")


class Dispatcher:
    def __init__(
        self,
        processor: Processor,
        acknowledger: Acknowledger,
        *,
        concurrency: int,
        fifo: bool,
        stopping: Callable[[], bool],
    ) -> None:
        self.processor = processor
        self.acknowledger = acknowledger
        self.concurrency = concurrency
        self.fifo = fifo
        self._stopping = stopping  # a stop was asked for: start nothing more
        self._lock = threading.Lock()
        self._groups: dict[str, deque[InMessage]] = {}
        self._work: queue.Queue[str | None] = queue.Queue()
        self._no_new_starts = False

    def start(self, spawn: Callable[[Callable[[], None], str], threading.Thread]) -> None:
        for i in range(self.concurrency):
            spawn(self._loop, f"nm-worker-{i}")

    def stop(self) -> None:
        """End the pool's threads once they finish what they run."""
        for _ in range(self.concurrency):
            self._work.put(None)

    def accept(self, messages: list[InMessage]) -> bool:
        """Queue fresh messages to be started; False when nothing may start any more (the
        caller hands them back)."""
        starts: list[str] = []
        with self._lock:
            if self._no_new_starts or self._stopping():
                return False
            for message in messages:
                key = message.receipt_handle
                if self.fifo and message.group_id:
                    key = message.group_id
                group = self._groups.get(key)
                if group is not None:
                    group.append(message)
                else:
                    self._groups[key] = deque([message])
                    starts.append(key)
        for key in starts:
            self._work.put(key)
        return True

    def stop_starting(self) -> None:
        """Start nothing more, and hand back every message received but not started."""
        with self._lock:
            self._no_new_starts = True
            unstarted = [m for group in self._groups.values() for m in group]
            for group in self._groups.values():
                group.clear()
        self.acknowledger.hand_back(unstarted)

    def _loop(self) -> None:
        while True:
            key = self._work.get()
            if key is None:
                return
            self._run_group(key)

    def _run_group(self, key: str) -> None:
        rest: list[InMessage] = []
        while True:
            with self._lock:
                group = self._groups.get(key)
                if not group:
                    self._groups.pop(key, None)
                    return
                if self._no_new_starts or self._stopping():
                    rest = list(group)
                    self._groups.pop(key, None)
                    break
                message = group.popleft()
            outcome = self._process(message)
            self.acknowledger.settle(outcome)
            if outcome.status is Status.RETRY and self.fifo:
                # A failure holds the rest of its group back: SQS gives them out again, in
                # order, once the failed message (still in flight, backing off) is resolved.
                with self._lock:
                    rest = list(self._groups.pop(key, ()))
                break
        self.acknowledger.hand_back(rest)

    def _process(self, message: InMessage) -> Outcome:
        try:
            return self.processor.process(message)
        except Exception as exc:  # a bug on our side: the message stays and comes back
            # Its text may quote a record: the class alone, the traceback only with --debug.
            log.warning(
                "processing message %s failed unexpectedly (%s); it comes back later",
                message.message_id,
                type(exc).__name__,
            )
            log.debug("processing message %s failed", message.message_id, exc_info=True)
            reason = f"internal error: {type(exc).__name__}"
            return Outcome(
                Status.RETRY, message, reason=reason, error=exc, error_kind=classify(exc)
            )
