"""Read a queue without consuming it: SQS has no peek, so receive, hide, and give back.

Receiving a message hides it for the receive's visibility timeout and raises its receive
count by one; nothing else changes. A :class:`Reader` receives in chunks of up to 10,
remembers the receipt handle of every message it holds, skips messages it has already seen
(a message whose visibility lapsed comes back), and stops holding more than ``max_in_flight``
messages (SQS refuses receives past 120,000 in flight on a standard queue, 20,000 on a
FIFO queue; the default leaves room for other consumers). ``release`` sets the visibility of
everything held to 0, so it is receivable again at once; :func:`peek` does that when the
read ends, is interrupted or fails (in a ``finally``). A process killed outright cannot
release: its messages come back when the peek's visibility timeout lapses.

Caveats, inherent to SQS: a message another consumer holds in flight cannot be read; on a
FIFO queue, a message whose group has a held message is not delivered, so a group's later
messages stay unseen; and the raised receive count matters on a queue with a redrive policy
(a read of a main queue brings its messages one receive closer to the DLQ: see
docs/guarantees.md, 3).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from northmigrate.aws.sqs.batch import change_visibility_batch
from northmigrate.aws.sqs.batch import chunks as in_tens
from northmigrate.aws.sqs.message import InMessage
from northmigrate.aws.sqs.queue import attributes, is_fifo, queue_name
from northmigrate.aws.sqs.receive import receive as receive_messages
from northmigrate.aws.sqs.retry import CALL, VISIBILITY

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("northmigrate.sqs")

PEEK_VISIBILITY_S = 300  # how long a read message stays hidden if the reader cannot release it
STANDARD_IN_FLIGHT_LIMIT = 120_000
FIFO_IN_FLIGHT_LIMIT = 20_000
IN_FLIGHT_HEADROOM = 0.8  # hold at most this share of the limit: leave room for others
RECEIVE_WAIT_S = 1  # long poll: an empty answer means the queue has nothing visible
STALE_RECEIVES = 3  # receives in a row with nothing new: the rest is what we already hold
RELEASE_THREADS = 8
READ_ATTRIBUTES = ["All"]


def back_within_s(sqs: SQSClient, url: str) -> int:
    """At most how long a message read by someone else stays hidden: the queue's visibility
    timeout, or northmigrate's own reads' (``PEEK_VISIBILITY_S``), whichever is longer.

    A reader may set a longer time on its receive (``--visibility-timeout``); this is the
    bound for a plain receive and for northmigrate's defaults.
    """
    visibility = int(attributes(sqs, url, ["VisibilityTimeout"]).get("VisibilityTimeout", 30))
    return max(visibility, PEEK_VISIBILITY_S)


def default_in_flight_limit(url: str) -> int:
    limit = FIFO_IN_FLIGHT_LIMIT if is_fifo(url) else STANDARD_IN_FLIGHT_LIMIT
    return int(limit * IN_FLIGHT_HEADROOM)


@dataclass
class ReadStats:
    read: int = 0  # distinct messages received
    repeats: int = 0  # receives of a message already seen (its visibility lapsed)
    ended: str = ""  # empty | limit | in_flight_limit | stale | stop


class Reader:
    """Receives new messages from one queue and remembers what it holds; thread-safe.

    ``receive`` returns only messages not seen before in this reader. ``hold`` marks
    messages to give back by ``release``; ``drop`` forgets ones that left the queue.
    """

    def __init__(
        self,
        sqs: SQSClient,
        url: str,
        *,
        visibility_timeout: int = PEEK_VISIBILITY_S,
        wait_time_s: int = RECEIVE_WAIT_S,
        max_in_flight: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs = sqs
        self.url = url
        self.visibility_timeout = visibility_timeout
        self.wait_time_s = wait_time_s
        self.max_in_flight = max_in_flight or default_in_flight_limit(url)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._held: dict[str, str] = {}  # message id -> latest receipt handle
        self._pending = 0  # received, neither held nor dropped yet
        self.stats = ReadStats()

    @property
    def holding(self) -> int:
        with self._lock:
            return len(self._held) + self._pending

    def room(self) -> int:
        """How many more messages may be received without passing ``max_in_flight``."""
        with self._lock:
            return max(0, self.max_in_flight - len(self._held) - self._pending)

    def receive(self, max_number: int = 10) -> tuple[list[InMessage], int]:
        """(new messages, how many messages the call returned in all)."""
        raw = receive_messages(
            self.sqs,
            self.url,
            max_number=max_number,
            wait_s=self.wait_time_s,
            visibility_timeout=self.visibility_timeout,
            attribute_names=READ_ATTRIBUTES,
            policy=CALL,
            sleep=self._sleep,
        )
        fresh: list[InMessage] = []
        with self._lock:
            for message in raw:
                if message.message_id in self._seen:
                    # Its visibility lapsed (or its delete failed): hold the newest handle so
                    # that release gives it back.
                    self.stats.repeats += 1
                    self._held[message.message_id] = message.receipt_handle
                    continue
                self._seen.add(message.message_id)
                self._pending += 1
                fresh.append(message)
            self.stats.read += len(fresh)
        return fresh, len(raw)

    def hold(self, messages: Iterable[InMessage]) -> None:
        with self._lock:
            for message in messages:
                self._held[message.message_id] = message.receipt_handle
                self._pending = max(0, self._pending - 1)

    def drop(self, messages: Iterable[InMessage]) -> None:
        with self._lock:
            for message in messages:
                self._held.pop(message.message_id, None)
                self._pending = max(0, self._pending - 1)

    def release(self) -> int:
        """Make every held message visible again at once; returns how many were released.

        Handles that are no longer valid (the message was deleted, or its visibility lapsed
        and someone else received it) are skipped. What cannot be released comes back by
        itself when the visibility timeout lapses.
        """
        with self._lock:
            handles = list(self._held.items())
            self._held.clear()
        if not handles:
            return 0
        tens = in_tens(handles)
        if len(tens) == 1:
            return self._release_chunk(tens[0])
        with ThreadPoolExecutor(RELEASE_THREADS, thread_name_prefix="nm-release") as pool:
            return sum(pool.map(self._release_chunk, tens))

    def _release_chunk(self, chunk: Sequence[tuple[str, str]]) -> int:
        result = change_visibility_batch(
            self.sqs,
            self.url,
            chunk,
            lambda held: held[1],
            lambda held: 0,
            policy=VISIBILITY,
            sleep=self._sleep,
        )
        if result.unconfirmed:
            log.warning(
                "could not make %d messages visible again (%s); they come back within %d s",
                len(result.unconfirmed),
                result.unconfirmed[0][1],
                self.visibility_timeout,
            )
        # A handle that is gone (deleted, or received by someone else) needs no giving back.
        return len(result.accepted)


def chunks(
    reader: Reader,
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
) -> Iterator[list[InMessage]]:
    """Chunks of new messages until the queue shows nothing new, ``limit`` were read, the
    in-flight limit is reached or ``stop`` is set; ``reader.stats.ended`` says which.

    Each message is held as it is yielded (the caller may ``drop`` the ones it removes).
    """
    stale = 0
    while True:
        if stop is not None and stop.is_set():
            reader.stats.ended = "stop"
            return
        want = 10
        if limit is not None:
            want = min(want, limit - reader.stats.read)
            if want <= 0:
                reader.stats.ended = "limit"
                return
        room = reader.room()
        if room <= 0:
            reader.stats.ended = "in_flight_limit"
            return
        fresh, returned = reader.receive(min(want, room))
        if returned == 0:
            reader.stats.ended = "empty"
            return
        if not fresh:
            stale += 1
            if stale >= STALE_RECEIVES:
                reader.stats.ended = "stale"
                return
            continue
        stale = 0
        reader.hold(fresh)
        yield fresh


def peek(
    sqs: SQSClient,
    url: str,
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
    visibility_timeout: int = PEEK_VISIBILITY_S,
    wait_time_s: int = RECEIVE_WAIT_S,
    max_in_flight: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Generator[list[InMessage], None, None]:
    """Every message of a queue, in chunks, consuming nothing (see the module docstring).

    A generator: everything it read is made visible again when it is exhausted, closed
    (``break`` out of the loop) or when the loop raises. The stats are on ``peek.stats`` of
    the reader; use :func:`peek_reader` to get hold of them.
    """
    reader = Reader(
        sqs,
        url,
        visibility_timeout=visibility_timeout,
        wait_time_s=wait_time_s,
        max_in_flight=max_in_flight,
        sleep=sleep,
    )
    yield from peek_reader(reader, limit=limit, stop=stop)


def peek_reader(
    reader: Reader, *, limit: int | None = None, stop: threading.Event | None = None
) -> Generator[list[InMessage], None, None]:
    """:func:`peek` over a reader the caller made (to read its stats afterwards)."""
    try:
        yield from chunks(reader, limit=limit, stop=stop)
    finally:
        released = reader.release()
        log.debug("released %d messages of %s", released, queue_name(reader.url))
