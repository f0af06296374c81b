"""Metrics of record outcomes: the tally, EMF documents, PutMetricData batches, the sink."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from helpers import aws_client

from northmigrate.consume.metrics import CloudWatchPublisher, EmfWriter, MetricsSink, Tally
from tests.support.emf import assert_emf


def event(outcome: str, kind: str | None = None, ms: float = 2.5) -> dict[str, Any]:
    return {"event": "record", "outcome": outcome, "failure_kind": kind, "duration_ms": ms}


def test_the_tally_counts_record_events_only() -> None:
    tally = Tally()
    for e in (
        event("migrated"),
        event("retried", "retry"),
        event("dead_lettered", "permanent"),
        event("dead_lettered", "exhausted"),
        event("dead_lettered", "exhausted"),
        event("released", ms=0.0),
        {"event": "invocation", "migrated": 9},
    ):
        tally.count(e)
    counts, dead, durations, failed = tally.take()
    assert counts == {"Migrated": 1, "Retried": 1, "Released": 1}
    assert dead == {"permanent": 1, "exhausted": 2}
    assert durations == [2.5] * 5  # a released record took no time: no duration
    assert failed == {"record": 4}  # events without an error kind: a record's
    assert tally.take() == ({}, {}, [], {})  # taken: empty


def test_emf_lines_of_a_big_flush_are_each_valid() -> None:
    tally = Tally()
    for n in range(250):
        tally.count(event("migrated", ms=float(n)))
    tally.count(event("dead_lettered", "invalid"))
    out = io.StringIO()
    EmfWriter("m", out)(tally)
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    for document in documents:
        assert_emf(document)
    assert [d.get("Migrated") for d in documents] == [250, None, None, None, None]
    assert sorted(v for d in documents for v in d.get("HandlerDuration", [])) == sorted(
        [float(n) for n in range(250)] + [2.5]
    )
    assert documents[-2]["FailureKind"] == "invalid" and documents[-2]["DeadLettered"] == 1
    assert documents[-1]["ErrorKind"] == "record" and documents[-1]["Failed"] == 1


def test_cloudwatch_gets_batched_put_metric_data() -> None:
    client = aws_client("cloudwatch", region_name="us-east-1")
    tally = Tally()
    for _ in range(200):
        tally.count(event("migrated", ms=1.0))
    tally.count(event("dead_lettered", "exhausted"))
    sent: list[Any] = []
    with Stubber(client) as stub:
        stub.add_response("put_metric_data", {}, {"Namespace": "northmigrate", "MetricData": ANY})
        client.meta.events.register(
            "provide-client-params.cloudwatch.PutMetricData",
            lambda params, **kw: sent.append(params["MetricData"]),
        )
        CloudWatchPublisher("m", client)(tally)
        stub.assert_no_pending_responses()
    [data] = sent
    by_name: dict[str, list[Any]] = {}
    for datum in data:
        by_name.setdefault(datum["MetricName"], []).append(datum)
    assert by_name["Migrated"][0]["Value"] == 200
    assert [len(d["Values"]) for d in by_name["HandlerDuration"]] == [150, 51]
    [dead] = by_name["DeadLettered"]
    assert {"Name": "FailureKind", "Value": "exhausted"} in dead["Dimensions"]


def test_the_sink_flushes_once_a_minute_and_at_the_end() -> None:
    now = [0.0]
    flushed: list[tuple[Any, ...]] = []
    sink = MetricsSink(lambda tally: flushed.append(tally.take()), clock=lambda: now[0])
    sink(event("migrated"))
    now[0] = 59.0
    sink(event("migrated"))
    assert flushed == []
    now[0] = 61.0
    sink(event("migrated"))
    assert [counts["Migrated"] for counts, *_ in flushed] == [3]
    sink(event("retried", "retry"))
    sink.close()
    assert [dict(counts) for counts, *_ in flushed] == [{"Migrated": 3}, {"Retried": 1}]


def test_a_failing_flush_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(tally: Tally) -> None:
        raise OSError("disk full")

    sink = MetricsSink(broken, every_s=0)
    with caplog.at_level(logging.WARNING, logger="northmigrate.metrics"):
        sink(event("migrated"))
        sink.close()
    assert "could not send the worker's metrics: disk full" in caplog.text
