"""Benchmark: ``dlq redrive`` against a plain boto3 loop, on the same emulator, in one run.

    python bench/redrive.py            # needs ministack: make ministack

Each contender empties its own DLQ of dead letters (onboarding-record envelopes with the
failure the worker attaches, and its reason attributes) into its own main queue, in its own
process (messages/s, client CPU µs per message, peak RSS), on plain loopback and through
latency proxies (bench/latency.py) adding 20 ms and 80 ms to each request, in one run; then
the share of its loopback rate the redrive keeps at each latency, and its CPU per message
against the plain loop's. The baseline: receive 1, send 1, delete 1, until the DLQ is
empty. The native ``StartMessageMoveTask`` moves at most 500 messages/s; at +20 ms the
client-side move should do twice that. northmigrate runs with its default cap of chunks in
flight unless ``--concurrency`` is given: how many are in flight adapts to the endpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    SLICES,
    Mark,
    Measure,
    child_report,
    depth,
    endpoints,
    latencies,
    machine,
    onboarding_messages,
    print_kept,
    print_table,
    report,
    run_child,
    send_all,
    sqs,
    timed_slices,
)

HERE = Path(__file__).resolve()
NATIVE_MAX_RATE = 500


@dataclass
class _Letter:
    body: str
    attributes: dict[str, dict[str, str]]
    size: int


def _fill(client: Any, url: str, count: int) -> None:
    """``count`` dead letters as the worker writes them: envelope, failure entry, reason."""
    from northmigrate.aws.sqs.message import message_size
    from northmigrate.examples.onboarding import migration
    from northmigrate.records import envelope

    letters = []
    for n, message in enumerate(onboarding_messages(count, seed=9), start=1):
        data = json.loads(message.body)
        reason = f"ConflictError: target service rejected record ({n % 3})"
        data["failures"] = [
            envelope.failure(
                kind="permanent",
                error_class="ConflictError",
                reason=reason,
                attempt=1,
                migration=migration.name,
                version=migration.version,
            )
        ]
        attrs = dict(message.attributes)
        attrs[envelope.ATTR_REASON] = {"DataType": "String", "StringValue": reason}
        attrs[envelope.ATTR_FAILURE_KIND] = {"DataType": "String", "StringValue": "permanent"}
        body = json.dumps(data, separators=(",", ":"))
        letters.append(_Letter(body, attrs, message_size(body, attrs)))
    send_all(client, url, letters)


def _plain_slice(client: Any, dlq: str, main_url: str, count: int) -> None:
    """The baseline: receive 1, send 1, delete 1, ``count`` times."""
    moved = 0
    while moved < count:
        got = client.receive_message(QueueUrl=dlq, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            client.send_message(
                QueueUrl=main_url,
                MessageBody=message["Body"],
                MessageAttributes=message.get("MessageAttributes", {}),
            )
            client.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def child(args: argparse.Namespace) -> None:
    from northmigrate.aws.inflight import MAX_IN_FLIGHT
    from northmigrate.dlq.redrive import redrive

    cap = args.concurrency or MAX_IN_FLIGHT
    if args.child == "northmigrate":  # the client the CLI makes (northmigrate.aws.AwsClients)
        from northmigrate.aws.clients import AwsClients
        from northmigrate.config import AwsSettings

        settings = AwsSettings(endpoint_url=args.endpoint, region="us-east-1")
        client: Any = AwsClients(settings, pool_size=cap + 4).client("sqs")
    else:
        client = sqs(args.endpoint, pool=cap + 4)
    dlq = client.create_queue(QueueName=args.queue + "-dlq")["QueueUrl"]
    main_url = client.create_queue(QueueName=args.queue)["QueueUrl"]
    _fill(client, dlq, args.count)
    if args.child == "northmigrate":
        mark = Mark.now()
        # Like the plain loop, it stops at the count it was given (without --max, the end of
        # a run is a one-second receive that finds the DLQ empty).
        result = redrive(client, dlq, main_url, concurrency=cap, max_messages=args.count)
        child_report(result.moved, mark)
        in_main, in_dlq = depth(client, main_url), depth(client, dlq)
        assert result.moved == args.count, f"moved {result.moved} of {args.count}"
        assert in_main == args.count and in_dlq == 0, f"main {in_main}, DLQ {in_dlq}"
        return
    # Timed at the same depths as the contender, on a sample (see timed_slices).
    timed, seconds, cpu_s, emulator_s = timed_slices(
        client, dlq, args.count, args.sample, lambda n: _plain_slice(client, dlq, main_url, n)
    )
    report(timed, seconds, cpu_s, emulator_s)
    # Outside the timing: the last slice left its depth minus what it moved in the DLQ.
    last_depth = args.count - (2 * SLICES - 1) * args.count // (2 * SLICES)
    in_main, in_dlq = depth(client, main_url), depth(client, dlq)
    assert in_main == timed, f"the baseline moved {in_main} of {timed}"
    assert in_dlq == last_depth - timed // SLICES, (
        f"DLQ {in_dlq}, expected {last_depth - timed // SLICES}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="dead letters to move")
    parser.add_argument("--latency-ms", default="20,80", help="the proxies' added latencies")
    parser.add_argument("--concurrency", type=int, default=0, help="the cap (0: the default)")
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--queue")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--sample", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows: list[Measure] = []
    with endpoints(*latencies(args.latency_ms)) as urls:
        for network, url in urls.items():
            # The plain loop makes three calls per message: it is timed on a sample, taken
            # at the same queue depths (see child()), of about 20 s at each latency.
            ms = float(network.strip("+ ms")) if network != "loopback" else 0.0
            sample = min(args.records, int(6_000 / ms) if ms else 2_000)
            for name in ("plain loop", "northmigrate"):
                shown = sample if name == "plain loop" else args.records
                print(f"… {name} on {network}: {shown} of {args.records}", file=sys.stderr)
                argv = [
                    "plain" if name == "plain loop" else name,
                    "--endpoint",
                    url,
                    "--queue",
                    f"bench-{uuid.uuid4().hex[:8]}",
                    "--count",
                    str(args.records),
                    "--sample",
                    str(sample),
                    "--concurrency",
                    str(args.concurrency),
                ]
                rows.append(run_child(HERE, argv, name, network))

    def baseline(m: Measure) -> Measure | None:
        return next(r for r in rows if r.network == m.network and r.contender == "plain loop")

    print_table(f"dlq redrive, ministack ({machine()})", rows, baseline, unit="message")
    by = {(r.network, r.contender): r for r in rows}
    print_kept(
        "dlq redrive: the share of its loopback rate kept, CPU against the plain loop",
        [(by[(n, "northmigrate")], by[(n, "plain loop")]) for n in urls],
    )
    for network in urls:
        nm, base = by[(network, "northmigrate")], by[(network, "plain loop")]
        ratio = nm.rate / base.rate
        verdicts = {"ratio": round(ratio, 1), "target": 6, "verdict": _verdict(ratio >= 6)}
        if network != "loopback":
            verdicts["over_native_max"] = _verdict(nm.rate > NATIVE_MAX_RATE)
        if network == "+20 ms":
            verdicts["over_twice_native_max"] = _verdict(nm.rate > 2 * NATIVE_MAX_RATE)
        # The emulator's share of a core beside the rate: ministack answers in one process.
        cores = nm.emulator_cores
        verdicts["emulator_cores"] = None if cores is None else round(cores, 2)
        print(json.dumps({"network": network, "messages_per_s": round(nm.rate), **verdicts}))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


if __name__ == "__main__":
    main()
