"""The pages of a table scan's segments, read one ``Scan`` call at a time.

A page is read again, from the same ``ExclusiveStartKey``, until it succeeds: throttling
(``ProvisionedThroughputExceededException``…) is first retried by botocore's retry mode,
then here with backoff; the position only moves after a page was received, so no page is
ever skipped. Each page is registered with the scan's checkpoint (if any) before its items
are handed out. A segment whose position was saved as a digest starts after the key that
``ScanState.locate`` finds again (``northmigrate.sources.resume``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from northmigrate.aws.clients import AWS_EXCEPTIONS, error_code, is_fatal, translate
from northmigrate.errors import InputError
from northmigrate.failures import OUTAGE, THROTTLED, classify
from northmigrate.sources.resume import PageToken, ScanCheckpoint, ScanState, WireKey

Page = tuple[list[dict[str, Any]], PageToken | None]  # the raw items, and their page's token


class Stopped(Exception):
    """The scan was stopped (its source closed): a scanning thread ends without a word."""


class PageReader:
    """Reads the pages of one scan's segments; shared by the threads that scan them.

    ``scanned`` (items scanned, the committed ones of a resumed scan included),
    ``pages_read`` and ``retries`` count for the whole scan.
    """

    def __init__(
        self,
        ddb: Any,
        table: str,
        *,
        key_names: Sequence[str],
        state: ScanState,
        checkpoint: ScanCheckpoint | None,
        scan_args: dict[str, Any],
        page_size: int | None,
        stop: threading.Event,
        sleep: Callable[[float], object],
        max_attempts: int,
    ) -> None:
        self.table = table
        self.state = state
        self.checkpoint = checkpoint
        self._ddb = ddb
        self._key_names = list(key_names)
        self._scan_args = scan_args
        self._page_size = page_size
        self._stop = stop
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self.scanned = state.scanned
        self.pages_read = 0
        self.retries = 0

    def pages(self, segment: int) -> Iterator[Page]:
        """Every page of ``segment`` from where it resumes. Raises Stopped once stopped."""
        key = self._resume_point(segment)
        total = self.state.total_segments
        kwargs: dict[str, Any] = {"TableName": self.table, **self._scan_args}
        if total > 1:
            kwargs |= {"Segment": segment, "TotalSegments": total}
        if self.state.consistent:
            kwargs["ConsistentRead"] = True
        if self._page_size:
            kwargs["Limit"] = self._page_size
        page = 0
        while True:
            if self._stop.is_set():
                raise Stopped
            if key is not None:
                kwargs["ExclusiveStartKey"] = key
            response = self._scan(kwargs, segment)
            items = response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            scanned = int(response.get("ScannedCount", len(items)))
            token = (
                self.checkpoint.page_read(segment, page, len(items), last, scanned)
                if self.checkpoint is not None
                else None
            )
            with self._lock:
                self.scanned += scanned
                self.pages_read += 1
            yield items, token
            if not last:
                return
            key = last
            page += 1

    def _resume_point(self, segment: int) -> WireKey | None:
        """Where the segment starts: a position saved as a digest is found again by reading
        the segment's keys from its start (``ScanState.locate``)."""
        seg = self.state.segments[segment]
        if seg.start_digest is None:
            return seg.start_key
        kwargs: dict[str, Any] = {"TableName": self.table}
        names = {f"#k{n}": name for n, name in enumerate(self._key_names)}
        kwargs |= {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        if self.state.total_segments > 1:
            kwargs |= {"Segment": segment, "TotalSegments": self.state.total_segments}
        if self.state.consistent:
            kwargs["ConsistentRead"] = True

        def read_page(start: WireKey | None) -> dict[str, Any]:
            if self._stop.is_set():
                raise Stopped
            return self._scan(kwargs | ({"ExclusiveStartKey": start} if start else {}), segment)

        return self.state.locate(segment, read_page)

    def _scan(self, kwargs: dict[str, Any], segment: int) -> dict[str, Any]:
        """One Scan call, retried with backoff on throttling; the position never moves here."""
        attempt = 0
        while True:
            try:
                response: dict[str, Any] = self._ddb.scan(**kwargs)
                return response
            except AWS_EXCEPTIONS as exc:
                attempt += 1
                what = f"DynamoDB Scan of {self.table} (segment {segment})"
                code = error_code(exc)
                if code == "ValidationException":
                    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
                    raise InputError(
                        f"DynamoDB refused the scan of {self.table}: {message}",
                        hint="check --filter and --filter-values",
                    ) from exc
                transient = classify(exc) in (THROTTLED, OUTAGE)  # not a record's: wait
                if is_fatal(exc) or not transient or attempt >= self._max_attempts:
                    raise translate(exc, what) from exc
                with self._lock:
                    self.retries += 1
                self._sleep(min(20.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))
                if self._stop.is_set():
                    raise Stopped from exc
