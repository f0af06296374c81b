"""Benchmark: the worker against a plain boto3 loop, on the same emulator, in one run.

    python bench/worker.py             # needs ministack: make ministack

Each contender drains its own queue of onboarding-record messages in its own process
(records/s, client CPU µs per record, peak RSS), with a no-op handler and with a handler that
sleeps 20 ms (an I/O-bound write), on plain loopback and through a proxy adding 20 ms to
each request. The baseline: receive 10, process each, delete each; it is timed on a sample
of the same queue, at the same depths (the emulator's cost per call grows with the depth).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from _common import (
    Mark,
    Measure,
    child_report,
    endpoints,
    machine,
    onboarding_messages,
    print_table,
    report,
    run_child,
    send_all,
    timed_slices,
)

HERE = Path(__file__).resolve()


def child(args: argparse.Namespace) -> None:
    from northmigrate.aws.clients import AwsClients
    from northmigrate.config import (
        AwsSettings,
        MigrationSettings,
        QueueSettings,
        Settings,
        WorkerSettings,
    )
    from northmigrate.examples.onboarding import OnboardingRecord
    from northmigrate.plugin import Migration

    sleep_s = args.sleep_ms / 1000

    def handler(record: OnboardingRecord, ctx: object) -> None:
        if sleep_s:
            time.sleep(sleep_s)

    migration = Migration(
        name="onboarding-v2", model=OnboardingRecord, key="application_id", handler=handler
    )
    settings = Settings(
        aws=AwsSettings(endpoint_url=args.endpoint, region="us-east-1"),
        queue=QueueSettings(name=args.queue, visibility_timeout=60),
        migration=MigrationSettings(plugin="bench:none"),
        worker=WorkerSettings(concurrency=args.concurrency, wait_time_s=1),
    )
    clients = AwsClients(settings.aws, pool_size=args.concurrency + 4)
    sqs = clients.client("sqs")
    dlq = sqs.create_queue(QueueName=args.queue + "-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName=args.queue)["QueueUrl"]
    send_all(sqs, url, onboarding_messages(args.count, seed=5))
    assert dlq
    if args.child == "northmigrate":
        mark = Mark.now()
        from northmigrate.consume.worker import Worker

        # Like the plain loop, it stops at the count it was given (--until-empty would add
        # the one-second empty long poll that tells it the queue is drained).
        result = Worker(clients, settings, migration, concurrency=args.concurrency).run(
            max_messages=args.count
        )
        child_report(result.succeeded, mark)
        assert result.succeeded == args.count, result.to_dict()
        left = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        assert left == "0", f"{left} messages left on the queue"
        return
    from northmigrate.records.envelope import parse

    def plain_slice(count: int) -> None:
        done = 0
        while done < count:
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, count - done), WaitTimeSeconds=1
            )
            for message in got.get("Messages", []):
                record = OnboardingRecord.model_validate(parse(message["Body"]).record)
                handler(record, None)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                done += 1

    # Timed at the same queue depths as the worker, on a sample (see timed_slices).
    report(*timed_slices(sqs, url, args.count, args.sample, plain_slice))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--queue")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--sleep-ms", type=float, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows: list[Measure] = []
    with endpoints(args.latency_ms) as urls:
        for network, url in urls.items():
            for sleep_ms, conc in ((0, 8), (20, 32)):
                slow = network != "loopback" or sleep_ms
                sample = min(args.records, 300 if slow else 2_000)
                for name, workers in (("plain loop", 1), ("northmigrate", conc)):
                    label = f"{name} ({sleep_ms:g} ms handler)"
                    shown = sample if name == "plain loop" else args.records
                    print(f"… {label} on {network}: {shown} of {args.records}", file=sys.stderr)
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
                        "--sleep-ms",
                        str(sleep_ms),
                        "--concurrency",
                        str(workers),
                    ]
                    rows.append(run_child(HERE, argv, label, network))

    def baseline(m: Measure) -> Measure | None:
        wanted = m.contender.replace("northmigrate", "plain loop")
        return next((r for r in rows if r.network == m.network and r.contender == wanted), None)

    print_table(f"worker, ministack ({machine()})", rows, baseline)
    by = {(r.network, r.contender): r for r in rows}
    for network in urls:
        for sleep_ms, target in ((0, 3), (20, 15)):
            nm = by[(network, f"northmigrate ({sleep_ms:g} ms handler)")]
            base = by[(network, f"plain loop ({sleep_ms:g} ms handler)")]
            ratio = nm.rate / base.rate
            verdict = "PASS" if ratio >= target else "MISS"
            print(
                json.dumps(
                    {
                        "network": network,
                        "handler_ms": sleep_ms,
                        "ratio": round(ratio, 1),
                        "target": target,
                        "verdict": verdict,
                        "emulator_cores": None
                        if nm.emulator_cores is None
                        else round(nm.emulator_cores, 2),
                    }
                )
            )


if __name__ == "__main__":
    main()
