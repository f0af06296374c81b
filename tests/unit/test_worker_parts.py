"""The worker's parts, each on its own: the in-flight ledger, the acknowledger, the
dispatcher and the receiver (fakes and in-process moto; no threads unless the part has)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from support.doubles import Settled

from northmigrate.aws.inflight import InFlight, Tuning
from northmigrate.aws.sqs.message import InMessage
from northmigrate.aws.sqs.queue import depth
from northmigrate.consume.processing import Outcome, Status
from northmigrate.consume.tap import GUARD, TapState
from northmigrate.consume.worker.acknowledger import Ack, Acknowledger
from northmigrate.consume.worker.dispatcher import Dispatcher
from northmigrate.consume.worker.gate import GuardStopped
from northmigrate.consume.worker.ledger import Ledger
from northmigrate.consume.worker.receiver import Receiver
from northmigrate.consume.worker.report import WorkerReport


class Beats:
    """A heartbeat that only records what it holds."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    def add(self, key: str, handle: str) -> None:
        self.held[key] = handle

    def remove(self, key: str) -> None:
        self.held.pop(key, None)


def msg(n: int, handle: str | None = None, group: str | None = None) -> InMessage:
    return InMessage(f"m{n}", handle or f"h{n}", "body", 1, group_id=group)


def ledger(capacity: int = 5) -> tuple[Ledger, WorkerReport, Beats]:
    report, beats = WorkerReport(), Beats()
    return Ledger(capacity, beats, report), report, beats  # type: ignore[arg-type]


# -- the ledger ----------------------------------------------------------------------------


def test_reservations_never_overshoot_the_capacity_or_max_messages() -> None:
    book, report, _ = ledger(capacity=12)
    never = lambda: False  # noqa: E731
    assert book.reserve(None, never) == 10
    assert book.reserve(None, never) == 2  # the rest of the room
    book.take_in([msg(1), msg(2)], 10)  # the first receive brought 2 of its 10
    assert book.held == 2 and report.received == 2
    assert book.reserve(5, never) == 1  # 5 at most: 2 received, 2 reserved elsewhere
    assert book.reserve(None, lambda: True) == 0  # a stop gives up at once


def test_a_message_that_comes_again_while_held_is_not_taken_twice() -> None:
    book, report, beats = ledger()
    assert book.take_in([msg(1, "first")], 1) == [msg(1, "first")]
    assert book.take_in([msg(1, "second")], 1) == []  # held already: not started twice
    assert report.received == 1 and book.held == 1
    assert beats.held == {"first": "second"}  # the heartbeat extends the newest handle
    let_go = book.let_go(msg(1, "first"))
    assert let_go.receipt_handle == "second" and beats.held == {}


def test_after_close_nothing_is_taken_in_or_acknowledged() -> None:
    book, report, beats = ledger()
    book.take_in([msg(1)], 1)
    assert book.close() == 1  # one still held: abandoned to SQS
    assert book.take_in([msg(2)], 1) == [] and report.received == 1 and "h2" not in beats.held
    assert book.settled(1) is False


# -- the acknowledger ----------------------------------------------------------------------


class Calls:
    """An SQS client that accepts every batch entry and records the calls."""

    def __init__(self, refuse_deletes: bool = False) -> None:
        self.deletes: list[list[str]] = []
        self.changes: list[list[tuple[str, int]]] = []
        self.refuse_deletes = refuse_deletes

    def delete_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        self.deletes.append([e["ReceiptHandle"] for e in Entries])
        if self.refuse_deletes:
            failed = [{"Id": e["Id"], "Code": "ReceiptHandleIsInvalid"} for e in Entries]
            return {"Successful": [], "Failed": failed}
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        self.changes.append([(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in Entries])
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def acknowledger(sqs: Calls) -> tuple[Acknowledger, Ledger, WorkerReport]:
    book, report, _ = ledger()
    acks = Acknowledger(
        sqs,  # type: ignore[arg-type]
        "u",
        ledger=book,
        report=report,
        retry_visibility=lambda attempt, kind: 7 * attempt,
        threads=1,
        sleep=lambda _: None,
    )
    return acks, book, report


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.SUCCEEDED, None),
        (Status.DEAD_LETTERED, None),
        (Status.REQUEUED, None),  # its delayed copy is confirmed: the old one goes
        (Status.RETRY, 14),  # in place: hidden for the backoff of attempt 2
    ],
)
def test_each_outcome_is_acknowledged_as_it_allows(status: Status, expected: int | None) -> None:
    sqs = Calls()
    acks, book, report = acknowledger(sqs)
    book.take_in([msg(1)], 1)
    acks.settle(Outcome(status, msg(1), "R-1", attempt=2, reason="E: x"))
    assert acks.pending == 1 and book.held == 0  # queued, never both at zero meanwhile
    acks.acknowledge([Ack(msg(1), expected)])
    if expected is None:
        assert sqs.deletes == [["h1"]] and sqs.changes == []
    else:
        assert sqs.changes == [[("h1", expected)]] and sqs.deletes == []
    assert report.processed == 1


def test_hand_backs_are_visible_at_once_and_counted() -> None:
    sqs = Calls()
    acks, book, report = acknowledger(sqs)
    book.take_in([msg(1), msg(2)], 2)
    acks.hand_back([msg(1), msg(2)])
    assert report.released == 2 and book.held == 0 and acks.pending == 2

    def spawn(target: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    acks.start(spawn)
    acks.stop()
    assert sqs.changes == [[("h1", 0), ("h2", 0)]] and acks.pending == 0


def test_a_refused_delete_is_counted() -> None:
    acks, _, report = acknowledger(Calls(refuse_deletes=True))
    acks.acknowledge([Ack(msg(1), None), Ack(msg(2), None)])
    assert report.delete_failed == 2


# -- the dispatcher ------------------------------------------------------------------------


class Script:
    """A processor whose outcome is chosen per message id."""

    def __init__(self, outcomes: dict[str, Status]) -> None:
        self.outcomes = outcomes
        self.ran: list[str] = []

    def process(self, message: InMessage) -> Outcome:
        self.ran.append(message.message_id)
        return Outcome(self.outcomes.get(message.message_id, Status.SUCCEEDED), message)


def test_on_a_fifo_queue_a_retry_holds_back_the_rest_of_its_group() -> None:
    script, settled = Script({"m2": Status.RETRY}), Settled()
    pool = Dispatcher(
        script,  # type: ignore[arg-type]
        settled,  # type: ignore[arg-type]
        concurrency=1,
        fifo=True,
        stopping=lambda: False,
    )
    group = [msg(n, group="g") for n in (1, 2, 3, 4)]
    assert pool.accept([*group, msg(9, group="other")])
    pool._run_group("g")
    pool._run_group("other")
    assert script.ran == ["m1", "m2", "m9"]  # m3 and m4 never start after m2 failed
    assert settled.handed_back == ["m3", "m4"]


def test_stopping_hands_back_what_waits_and_accepts_nothing_more() -> None:
    script, settled = Script({}), Settled()
    pool = Dispatcher(script, settled, concurrency=1, fifo=False, stopping=lambda: False)  # type: ignore[arg-type]
    assert pool.accept([msg(1), msg(2)])
    pool.stop_starting()
    assert sorted(settled.handed_back) == ["m1", "m2"] and script.ran == []
    assert not pool.accept([msg(3)])


# -- the receiver --------------------------------------------------------------------------


class OpenTap:
    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit

    def state(self) -> TapState:
        return TapState(open=True, limit=self._limit)

    def wait_open(self, stop: threading.Event) -> bool:
        return not stop.is_set()

    def limit(self) -> int | None:
        return self._limit


def receiver_on(sqs: Any, url: str, **options: Any) -> tuple[Receiver, list[InMessage]]:
    book, _, _ = ledger(capacity=30)
    started: list[InMessage] = []

    class Pool:
        """Runs each message at once: migrated and deleted."""

        def accept(self, messages: list[InMessage]) -> bool:
            started.extend(messages)
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message.receipt_handle)
                book.let_go(message)
                book.settled(1)
            return True

    acks = Acknowledger(
        sqs,
        url,
        ledger=book,
        report=WorkerReport(),
        retry_visibility=lambda attempt, kind: attempt,
        threads=1,
    )
    options.setdefault("stop", threading.Event())
    options.setdefault("max_messages", None)
    receiver = Receiver(
        sqs,
        url,
        ledger=book,
        dispatcher=Pool(),  # type: ignore[arg-type]
        acknowledger=acks,
        tap=OpenTap(),  # type: ignore[arg-type]
        rate=None,
        wait_s=0,
        depth=lambda: depth(sqs, url),
        **options,
    )
    return receiver, started


@pytest.mark.timeout(60)
def test_until_empty_ends_when_the_queue_is_drained(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(13):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    receiver, started = receiver_on(sqs, url)
    assert receiver.run(until_empty=True) == "empty"
    assert sorted(int(m.body) for m in started) == list(range(13))
    assert receiver.last_depth is not None and receiver.last_depth.visible == 0


def test_max_messages_ends_receiving_after_that_many(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(13):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    receiver, started = receiver_on(sqs, url, max_messages=4)
    assert receiver.run(until_empty=False) == "max_messages"
    assert len(started) == 4


def test_a_stop_ends_receiving(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    stop = threading.Event()
    stop.set()
    receiver, started = receiver_on(sqs, url, stop=stop)
    assert receiver.run(until_empty=False) == "signal" and started == []


class GuardClosedTap(OpenTap):
    def state(self) -> TapState:
        return TapState(open=False, closed_by=f"{GUARD} (worker h:1)", reason="9 of 10 failed")


def test_a_tap_the_guard_closed_ends_receiving_with_its_reason(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    receiver, started = receiver_on(sqs, url)
    receiver.tap = receiver.waiter.tap = GuardClosedTap()  # type: ignore[assignment]
    with pytest.raises(GuardStopped, match="the guard closed the tap: 9 of 10 failed"):
        receiver.run(until_empty=True)
    assert started == []


# -- the adaptive limits of receives and acknowledgements in flight -------------------------


def fixed(limit: int, cap: int = 8) -> InFlight:
    """A limit that never moves by itself (its rounds never end)."""
    return InFlight(cap, tuning=Tuning(start=limit, round_s=1e9), clock=lambda: 0.0)


class Deletes:
    """Accepts every delete; records the most calls at once; botocore retried each call
    ``retries`` times (a throttled endpoint)."""

    def __init__(self, retries: int = 0) -> None:
        self.retries = retries
        self.lock = threading.Lock()
        self.active = self.most = 0
        self.deleted: list[str] = []

    def delete_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.002)  # gives the other threads a chance to overlap this call
        with self.lock:
            self.active -= 1
            self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries],
            "Failed": [],
            "ResponseMetadata": {"RetryAttempts": self.retries},
        }


def spawn(target: Any, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def limited_acknowledger(
    sqs: Any, book: Ledger, report: WorkerReport, *, threads: int, inflight: InFlight
) -> Acknowledger:
    """An acknowledger on ``sqs`` whose calls in flight ``inflight`` limits."""
    return Acknowledger(
        sqs,
        "u",
        ledger=book,
        report=report,
        retry_visibility=lambda attempt, kind: attempt,
        threads=threads,
        sleep=lambda _: None,
        inflight=inflight,
    )


def test_acknowledgements_in_flight_never_pass_the_limit() -> None:
    sqs = Deletes()
    book, report, _ = ledger(capacity=60)
    limit = fixed(1)
    acks = limited_acknowledger(sqs, book, report, threads=4, inflight=limit)
    book.take_in([msg(n) for n in range(60)], 60)
    acks.start(spawn)
    for n in range(60):
        acks.settle(_migrated(n))
    acks.stop()
    assert sorted(sqs.deleted) == sorted(f"h{n}" for n in range(60))
    assert sqs.most == 1  # four threads, one call at a time
    assert limit.in_flight == 0 and acks.pending == 0


def test_throttled_acknowledgements_lower_the_limit() -> None:
    sqs = Deletes(retries=1)
    book, report, _ = ledger(capacity=40)
    limit = InFlight(8, tuning=Tuning(start=8))
    acks = limited_acknowledger(sqs, book, report, threads=8, inflight=limit)
    book.take_in([msg(n) for n in range(40)], 40)
    acks.start(spawn)
    for n in range(40):
        acks.settle(_migrated(n))
    acks.stop()
    assert len(sqs.deleted) == 40  # strained, not failed: every message deleted
    assert limit.decreases >= 1 and limit.limit < 8


def test_a_receiver_without_a_slot_reserves_nothing_and_gives_up(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="1")
    limit = fixed(1)
    receiver, started = receiver_on(sqs, url, inflight=limit)
    assert limit.acquire()  # another receive holds the only slot
    receiver.over.set()  # receiving ends while this one waits
    assert receiver._receive_some() is None
    assert receiver.ledger.held == 0 and receiver.ledger.reserve(None, lambda: False) == 10
    assert started == [] and limit.in_flight == 1


def test_a_receive_gives_its_slot_back_with_what_it_brought(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    limit = fixed(1)
    receiver, started = receiver_on(sqs, url, inflight=limit)
    got = 0
    while got < 3:
        got += receiver._receive_some() or 0
    assert sorted(m.body for m in started) == ["0", "1", "2"]
    assert limit.in_flight == 0


def _migrated(n: int) -> Outcome:
    return Outcome(Status.SUCCEEDED, msg(n), f"R-{n}", attempt=1, reason="")


def test_receive_threads_double_at_most_and_only_as_full_receives_fit() -> None:
    from northmigrate.consume.worker.runner import receive_threads

    assert receive_threads(2, 8 + 20, fifo=False) == 2  # 28 of room: two receives of ten
    assert receive_threads(2, 16 + 20, fifo=False) == 3
    assert receive_threads(4, 32 + 40, fifo=False) == 7
    assert receive_threads(4, 64 + 40, fifo=False) == 8  # twice the receivers at most
    assert receive_threads(1, 100, fifo=True) == 1  # FIFO: one receiver keeps the order
