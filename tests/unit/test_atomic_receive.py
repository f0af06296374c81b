"""The embedded endpoint's receives are atomic, as SQS's are (``northmigrate.local``)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from northmigrate.local import atomic_sqs_receives

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
