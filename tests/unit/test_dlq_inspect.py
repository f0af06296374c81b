"""Inspect and the peek technique on moto in-process: nothing removed, everything visible
again, counts by reason, sensitive fields masked, the export written once with mode 0600."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.sqs.reader import Reader, peek_reader
from northmigrate.dlq import ExportWriter, inspect, peek, record_reasons
from northmigrate.records import envelope

SENSITIVE = ("owner.ssn", "email")
SSN = "900-12-3456"
EMAIL = "pat@example.com"


def dead_letter(sqs: Any, url: str, n: int, reason: str | None, kind: str = "permanent") -> None:
    record = {"id": f"R-{n}", "owner": {"ssn": f"{SSN}{n}"}, "email": EMAIL, "country": "CA"}
    env = envelope.Envelope("m", f"R-{n}", record)
    attrs = envelope.attributes("m", f"R-{n}")
    if reason is not None:
        env.failures.append(
            envelope.failure(
                kind=kind, error_class="E", reason=reason, attempt=1, migration="m", version="1"
            )
        )
        attrs[envelope.ATTR_REASON] = {"DataType": "String", "StringValue": reason}
        attrs[envelope.ATTR_FAILURE_KIND] = {"DataType": "String", "StringValue": kind}
    sqs.send_message(QueueUrl=url, MessageBody=env.to_body(), MessageAttributes=attrs)


def fill(sqs: Any) -> str:
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    for n in range(12):
        dead_letter(sqs, url, n, "ValueError: bad country")
    for n in range(12, 17):
        dead_letter(sqs, url, n, "PermanentError: refused", "permanent")
    for n in range(17, 20):
        dead_letter(sqs, url, n, None)  # moved by SQS itself
    sqs.send_message(QueueUrl=url, MessageBody="not json at all")
    return url


def receivable(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Everything visible now (received with a short visibility, then given back)."""
    out: dict[str, dict[str, Any]] = {}
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, AttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            break
        for m in got:
            out[m["MessageId"]] = m
    for m in out.values():
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(out.values())


def test_inspect_counts_reasons_and_leaves_every_message_visible(sqs: Any) -> None:
    url = fill(sqs)
    report = inspect(sqs, url, sensitive=SENSITIVE, limit=5, wait_time_s=0, now=lambda: 2e10)

    data = report.to_dict()
    assert data["visible"] == 21 and data["in_flight"] == 0 and data["delayed"] == 0
    assert data["scanned"] == 21 and data["complete"] is True
    assert data["reasons"] == [
        {"reason": "ValueError: bad country", "count": 12},
        {"reason": "PermanentError: refused", "count": 5},
        {"reason": "unknown", "count": 4},
    ]
    assert len(data["messages"]) == 5
    for message in data["messages"]:
        assert set(message) == {
            "message_id",
            "record_id",
            "receive_count",
            "reason",
            "error_kind",  # record, throttled or outage (None: a letter from before)
            "origin",
            "body",
        }
        assert message["receive_count"] == 1
    assert data["oldest_age_s"] is not None and data["oldest_age_s"] > 0
    # Nothing removed, nothing hidden: all 21 are receivable right away, each received once.
    again = receivable(sqs, url)
    assert len(again) == 21
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}


def test_sensitive_fields_are_masked_unless_show_pii(sqs: Any) -> None:
    url = fill(sqs)
    masked = json.dumps(inspect(sqs, url, sensitive=SENSITIVE, limit=50, wait_time_s=0).to_dict())
    assert SSN not in masked and EMAIL not in masked
    assert '"ssn": "***"' in masked
    shown = json.dumps(
        inspect(sqs, url, sensitive=SENSITIVE, show_pii=True, limit=50, wait_time_s=0).to_dict()
    )
    assert SSN in shown and EMAIL in shown


def test_export_writes_every_message_once_with_owner_only_mode(sqs: Any, tmp_path: Path) -> None:
    url = fill(sqs)
    path = tmp_path / "dead.jsonl"
    with ExportWriter(path) as writer:
        report = inspect(sqs, url, sensitive=SENSITIVE, limit=0, export=writer, wait_time_s=0)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert report.exported == len(lines) == 21
    ids = [line["message_id"] for line in lines]
    assert len(set(ids)) == 21
    assert {m["MessageId"] for m in receivable(sqs, url)} == set(ids)
    text = path.read_text()
    assert SSN not in text and EMAIL not in text
    envelopes = [line for line in lines if isinstance(line["body"], dict)]
    assert all(line["body"]["record"]["owner"]["ssn"] == "***" for line in envelopes)
    assert any(line["body"] == "not json at all" for line in lines)
    reasons = {line["reason"] for line in lines}
    assert reasons == {"ValueError: bad country", "PermanentError: refused", "unknown"}
    assert all("message_attributes" in line and "attributes" in line for line in lines)


def test_export_with_show_pii_has_the_values(sqs: Any, tmp_path: Path) -> None:
    url = fill(sqs)
    path = tmp_path / "dead.jsonl"
    with ExportWriter(path) as writer:
        inspect(sqs, url, sensitive=SENSITIVE, show_pii=True, export=writer, wait_time_s=0)
    assert SSN in path.read_text() and EMAIL in path.read_text()


def test_an_interrupted_read_gives_back_what_it_read(sqs: Any) -> None:
    url = fill(sqs)
    stop = threading.Event()
    report = inspect(sqs, url, wait_time_s=0, progress=lambda r: stop.set(), stop=stop)
    assert report.interrupted and 0 < report.scanned < 21
    assert len(receivable(sqs, url)) == 21


def test_an_error_inside_the_read_still_gives_back_what_it_read(sqs: Any) -> None:
    url = fill(sqs)
    with pytest.raises(RuntimeError):
        for _chunk in peek(sqs, url, wait_time_s=0):
            raise RuntimeError("the caller failed")
    assert len(receivable(sqs, url)) == 21


def test_scan_and_the_in_flight_limit_bound_the_read(sqs: Any) -> None:
    url = fill(sqs)
    assert inspect(sqs, url, scan=7, wait_time_s=0).scanned == 7
    reader = Reader(sqs, url, wait_time_s=0, max_in_flight=15)
    read = sum(len(chunk) for chunk in peek_reader(reader))
    assert read == 15 and reader.stats.ended == "in_flight_limit"
    assert len(receivable(sqs, url)) == 21


def test_record_reasons_is_the_peek_reconcile_takes(sqs: Any) -> None:
    url = fill(sqs)
    found = record_reasons(sqs, url)
    assert found["R-0"] == "ValueError: bad country"
    assert found["R-17"] is None
    assert len(found) == 20  # the raw body has no record id
    assert len(receivable(sqs, url)) == 21


def test_inspect_reports_dead_letters_in_flight_and_when_they_return(sqs: Any) -> None:
    url = fill(sqs)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "900"})
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=600)
    assert len(got["Messages"]) == 4  # an interrupted read still holds these
    report = inspect(sqs, url)
    data = report.to_dict()
    assert (data["in_flight"], data["in_flight_back_within_s"]) == (4, 900)
    assert report.scanned == 21 - 4
    assert report.hidden_note is not None and "come back within 900 s" in report.hidden_note
    assert inspect(sqs, fill_other(sqs)).to_dict()["in_flight_back_within_s"] is None


def fill_other(sqs: Any) -> str:
    url = sqs.create_queue(QueueName="calm-dlq")["QueueUrl"]
    dead_letter(sqs, url, 1, "E: x")
    return url
