"""The in-flight ledger: every message the worker holds, and room for more.

A message is *held* from the receive that brought it until it is settled (its outcome is
acknowledged, or it is handed back). The ledger keeps the receipt handle each came with and
a newer one when SQS delivered it again while held (at least once; an emulator may hand one
message to two concurrent receives): the message is then not started twice, and its
heartbeat and its acknowledgement use the newest handle, the one SQS honours. Receives
*reserve* their slots first, so that no two receives together overshoot the capacity
(running plus prefetched) or ``--max-messages``; a reservation ends, and the received
count grows, in one step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from northmigrate.aws.sqs.message import InMessage
from northmigrate.consume.heartbeat import Heartbeat
from northmigrate.consume.worker.report import WorkerReport

log = logging.getLogger("northmigrate.worker")

MAX_RECEIVE = 10  # messages a ReceiveMessage call takes at most


class Ledger:
    def __init__(self, capacity: int, heartbeat: Heartbeat, report: WorkerReport) -> None:
        self.capacity = capacity
        self.heartbeat = heartbeat
        self._report = report
        self._cond = threading.Condition()
        self._held = 0  # received and not yet settled (finished, or handed back)
        self._reserved = 0  # slots taken by receives in progress
        self._holding: dict[str, str] = {}  # message id -> the receipt handle it came with
        self._newest: dict[str, str] = {}  # message id -> a newer receipt handle
        self._closed = False

    @property
    def held(self) -> int:
        with self._cond:
            return self._held

    @property
    def received(self) -> int:
        """Messages taken in so far (the run's ``received``)."""
        with self._cond:
            return self._report.received

    def reserve(self, max_messages: int | None, give_up: Callable[[], bool]) -> int:
        """Slots for one receive (1..10), once the pool and its prefetch have room; 0 when
        ``give_up()`` or when --max-messages is all taken."""
        with self._cond:
            while True:
                if give_up():
                    return 0
                room = self.capacity - self._held - self._reserved
                if max_messages is not None:
                    left = max_messages - self._report.received - self._reserved
                    room = min(room, left)
                    if room <= 0 and self._reserved == 0:
                        return 0
                if room > 0:
                    n = min(room, MAX_RECEIVE)
                    self._reserved += n
                    return n
                self._cond.wait(0.25)

    def take_in(self, messages: list[InMessage], reserved: int) -> list[InMessage]:
        """End a receive's reservation; the messages now held that are new to it (a repeat
        only refreshes its receipt handle). Nothing, once the ledger is closed: SQS gives
        those out again after their visibility timeout."""
        fresh: list[InMessage] = []
        again: list[tuple[str, str]] = []  # (first receipt handle, newest) of repeats
        with self._cond:
            self._reserved -= reserved
            self._cond.notify_all()
            if not messages or self._closed:
                return []
            for message in messages:
                first = self._holding.get(message.message_id)
                if first is None:
                    self._holding[message.message_id] = message.receipt_handle
                    fresh.append(message)
                else:
                    self._newest[message.message_id] = message.receipt_handle
                    again.append((first, message.receipt_handle))
            # Counted with the reservation's end: no other receive overshoots meanwhile.
            self._report.received += len(fresh)
            self._held += len(fresh)
        # The heartbeat's lock may be held across a round of calls: not under ours.
        for first, newest in again:
            self.heartbeat.add(first, newest)
            log.info("a message came again while held: not started twice")
        for message in fresh:
            self.heartbeat.add(message.receipt_handle, message.receipt_handle)
        with self._cond:
            late = self._closed
            if late:
                self._report.received -= len(fresh)
                self._held -= len(fresh)
        if late:
            for message in fresh:
                self.let_go(message)
            return []
        return fresh

    def let_go(self, message: InMessage) -> InMessage:
        """Stop holding ``message`` (and its heartbeat); it, with its newest receipt handle."""
        self.heartbeat.remove(message.receipt_handle)
        with self._cond:
            self._holding.pop(message.message_id, None)
            newest = self._newest.pop(message.message_id, None)
        return message if newest is None else replace(message, receipt_handle=newest)

    def settled(self, n: int) -> bool:
        """``n`` held messages are settled; False when the ledger closed meanwhile (too late
        to acknowledge them: SQS delivers them again)."""
        with self._cond:
            self._held -= n
            self._cond.notify_all()
            return not self._closed

    def close(self) -> int:
        """Take nothing more in; how many messages are still held (abandoned)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            return self._held
