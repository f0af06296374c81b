"""``dlq inspect``: depth, age, reasons and a sample of the DLQ, removing nothing.

The queue is read with :mod:`northmigrate.aws.sqs.reader`: every message read is held hidden
until the read ends, then made visible again at once (also when the read is interrupted or
fails). ``scan`` bounds how many messages are read (default: the whole queue, up to the
in-flight limit); the reasons count what was read (``scanned``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from northmigrate.aws.sqs.queue import Depth, depth, queue_name
from northmigrate.aws.sqs.reader import (
    PEEK_VISIBILITY_S,
    RECEIVE_WAIT_S,
    Reader,
    back_within_s,
    peek_reader,
)
from northmigrate.dlq.export import ExportWriter
from northmigrate.dlq.letters import export_view, hidden_note, read_letter, sample_view

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Progress = Callable[["InspectReport"], None]


@dataclass
class InspectReport:
    queue: str
    depth: Depth
    scanned: int = 0
    oldest_sent_at: float | None = None
    oldest_age_s: float | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    messages: list[dict[str, Any]] = field(default_factory=list)
    ended: str = ""  # empty | limit | in_flight_limit | stale | stop
    released: bool = True
    export_file: str | None = None
    exported: int = 0
    interrupted: bool = False
    back_within_s: int | None = None  # when the messages in flight come back, at most

    @property
    def hidden_note(self) -> str | None:
        return hidden_note(self.depth.in_flight, self.back_within_s)

    @property
    def complete(self) -> bool:
        """The read ended because the queue had nothing more to show."""
        return self.ended in ("empty", "stale")

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "visible": self.depth.visible,
            "in_flight": self.depth.in_flight,
            "in_flight_back_within_s": self.back_within_s if self.depth.in_flight else None,
            "delayed": self.depth.delayed,
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 1),
            "reasons": [{"reason": r, "count": n} for r, n in self.reasons.most_common()],
            "messages": self.messages,
            "scanned": self.scanned,
            "complete": self.complete,
            "export_file": self.export_file,
            "exported": self.exported,
        }


def inspect(
    sqs: SQSClient,
    url: str,
    *,
    sensitive: Sequence[str] = (),
    show_pii: bool = False,
    limit: int = 10,
    scan: int | None = None,
    export: ExportWriter | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    now: Callable[[], float] = time.time,
    visibility_timeout: int = PEEK_VISIBILITY_S,
    wait_time_s: int = RECEIVE_WAIT_S,
    max_in_flight: int | None = None,
) -> InspectReport:
    """Read the queue without consuming it; see the module docstring.

    The depth is asked before the read (the read's own hidden messages would count as in
    flight). ``limit`` messages go into the sample; with ``export`` every message read is
    written once. ``oldest_age_s`` is the age of the oldest message read, by its
    ``SentTimestamp`` (when it entered this queue: the worker's move, or the original send
    for a message SQS moved itself).
    """
    report = InspectReport(queue=queue_name(url), depth=depth(sqs, url))
    if report.depth.in_flight:
        report.back_within_s = back_within_s(sqs, url)
    if export is not None:
        report.export_file = str(export.path)
    reader = Reader(
        sqs,
        url,
        visibility_timeout=visibility_timeout,
        wait_time_s=wait_time_s,
        max_in_flight=max_in_flight,
    )
    try:
        with closing(peek_reader(reader, limit=scan, stop=stop)) as read:
            for chunk in read:
                for message in chunk:
                    letter = read_letter(message)
                    report.scanned += 1
                    report.reasons[letter.reason] += 1
                    sent = letter.sent_at
                    if sent is not None and (
                        report.oldest_sent_at is None or sent < report.oldest_sent_at
                    ):
                        report.oldest_sent_at = sent
                    if len(report.messages) < limit:
                        report.messages.append(sample_view(letter, sensitive, show_pii))
                    if export is not None:
                        export.write(export_view(letter, sensitive, show_pii))
                        report.exported += 1
                if progress is not None:
                    progress(report)
    finally:
        report.ended = reader.stats.ended or "stop"
        report.interrupted = report.ended == "stop"
    if report.oldest_sent_at is not None:
        report.oldest_age_s = max(0.0, now() - report.oldest_sent_at)
    return report
