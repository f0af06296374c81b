"""The embedded endpoint's receives are atomic, as SQS's are, and give a FIFO group out
in order (``northmigrate.aws.local``)."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import Counter
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID
from moto.sqs.models import SQSBackend, sqs_backends

from northmigrate.aws import local
from northmigrate.aws.local import atomic_sqs_receives

MESSAGES = 300
THREADS = 8


def receive_everything(sqs: Any, url: str) -> Counter[str]:
    """Receive with THREADS threads at once until the queue is drained; message id counts."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def receiver() -> None:
        start.wait()
        while True:
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300
            ).get("Messages", [])
            if not got:
                return
            with lock:
                seen.update(m["MessageId"] for m in got)

    threads = [threading.Thread(target=receiver) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def test_concurrent_receives_never_share_a_message(sqs: Any) -> None:
    atomic_sqs_receives()
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for start in range(0, MESSAGES, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "MessageBody": f"m{start + n}"} for n in range(10)],
        )
    seen = receive_everything(sqs, url)
    assert len(seen) == MESSAGES
    assert [m for m, n in seen.items() if n > 1] == []


def test_a_long_poll_still_waits_and_wakes_for_a_message(sqs: Any) -> None:
    atomic_sqs_receives()
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    timer = threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=url, MessageBody="late"))
    timer.start()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    timer.join()
    assert [m["Body"] for m in got] == ["late"]
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []


def hold_a_group(sqs: Any) -> tuple[str, dict[str, str]]:
    """A FIFO queue whose one group, g-1 to g-3, is received (held for 30 s); its URL and
    the receipt handles by body."""
    url = sqs.create_queue(
        QueueName="g.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
    )["QueueUrl"]
    for n in (1, 2, 3):
        sqs.send_message(
            QueueUrl=url, MessageBody=f"g-{n}", MessageGroupId="g", MessageDeduplicationId=str(n)
        )
    held = {
        m["Body"]: m["ReceiptHandle"]
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    }
    assert sorted(held) == ["g-1", "g-2", "g-3"]
    return url, held


@pytest.fixture(params=["patched", "unpatched"])
def receives_patched(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    atomic_sqs_receives()
    if request.param == "unpatched":
        monkeypatch.setattr(SQSBackend, "receive_message", SQSBackend.receive_message.__wrapped__)
    return bool(request.param == "patched")


def test_a_fifo_group_comes_back_in_order_after_a_lapsed_visibility(
    sqs: Any, receives_patched: bool
) -> None:
    """A consumer held g-1, g-2 and g-3 of one group; g-3's visibility lapsed (its consumer
    timed out) and then g-1 and g-2 were handed back. SQS gives the group out again in
    order. moto counts the group in flight from a snapshot that still holds the lapsed g-3,
    skips g-1 and g-2 for it, then reaches g-3, finds it lapsed, and hands it out alone:
    ahead of the two before it. (The worker saw this when a hand-back's visibility of 0
    read the clock in the same millisecond as moto's check: the message stayed counted.)"""
    url, held = hold_a_group(sqs)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=held["g-3"], VisibilityTimeout=1)
    time.sleep(1.1)  # at least: a lapse only needs the clock to have passed it
    for body in ("g-1", "g-2"):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=held[body], VisibilityTimeout=0)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    bodies = [m["Body"] for m in got]
    if receives_patched:
        assert bodies == ["g-1", "g-2", "g-3"]
    else:  # moto's own receive: the race the patch closes, shown
        assert bodies == ["g-3"]


@pytest.mark.parametrize("one_instant", [True, False], ids=["one-instant", "moving-clock"])
def test_no_visibility_lapses_halfway_through_a_receive(
    sqs: Any, one_instant: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """g-1 and g-2 are handed back; g-3's visibility lapses while moto scans the queue
    (moto reads the clock for every message). Read at one instant, g-3 is still in flight:
    nothing of the group is given, and once it lapses the group comes out in order. With a
    clock that moves during the scan, g-3 is in flight when moto takes its snapshot of the
    groups (so g-1 and g-2 are skipped) and lapsed when the scan reaches it: given alone."""
    url, held = hold_a_group(sqs)
    for body in ("g-1", "g-2"):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=held[body], VisibilityTimeout=0)
    backend = sqs_backends[ACCOUNT_ID]["us-east-1"]
    queue = backend.get_queue("g.fifo")
    [g3] = [m for m in queue._messages if m.body == "g-3"]
    if not one_instant:
        monkeypatch.setattr(local, "_one_instant", contextlib.nullcontext)
    # On this thread the clock moves a millisecond a read; g-3 lapses between the first read
    # and the second.
    real, start, me = time.time, time.time(), threading.get_ident()
    reads = itertools.count()
    g3.visible_at = start * 1000 + 0.5
    with monkeypatch.context() as clock:
        clock.setattr(
            time,
            "time",
            lambda: start + next(reads) / 1000 if threading.get_ident() == me else real(),
        )
        got = backend.receive_message("g.fifo", 10, 0, 30, [])
    bodies = [m.body for m in got]
    if one_instant:
        assert bodies == []
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        assert [m["Body"] for m in got] == ["g-1", "g-2", "g-3"]
    else:  # the clock moved during the scan: the race the one instant closes, shown
        assert bodies == ["g-3"]
