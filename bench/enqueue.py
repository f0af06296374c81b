"""Benchmark: enqueue against two plain-boto3 baselines, on the same emulator, in one run.

    python bench/enqueue.py            # or: make bench

Starts ministack (installed by `make ministack`), and measures each contender in its own
process (records/s, client CPU µs per record, peak RSS) on plain loopback and through
latency proxies (bench/latency.py) that add 20 ms and 80 ms to every request (a real SQS
round trip from the same region, and from across an ocean), all in one run. Then prints
the share of its loopback rate that enqueue keeps at each latency, and its CPU per record
against the plain batch loop's, and times `validate` over a generated file of 1,000,000
records (records/s and peak RSS).

Contenders: northmigrate's enqueue (validation, envelope, batches in flight, as many as the
endpoint rewards, at most `--concurrency`: by default the product's own cap); a plain loop
of send_message per record; a plain single-threaded send_message_batch loop. Every
contender sends the same eligible records, each to a fresh queue. Slow baselines send a
prefix of the records (their rate does not depend on the count).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import uuid
from pathlib import Path

from _common import (
    Mark,
    Measure,
    child_report,
    endpoints,
    latencies,
    machine,
    print_kept,
    print_table,
    run_child,
    sqs,
)

HERE = Path(__file__).resolve()


def child(args: argparse.Namespace) -> None:
    mark = Mark.now()
    if args.child == "validate":
        from northmigrate import enqueue
        from northmigrate.examples.onboarding import migration
        from northmigrate.sources import open_source

        report = enqueue.run(open_source(args.source), migration, max_message_size=262_144)
        child_report(report.tally.read, mark)
        return
    if args.child == "northmigrate":
        from northmigrate import enqueue
        from northmigrate.aws.clients import AwsClients
        from northmigrate.aws.inflight import MAX_IN_FLIGHT
        from northmigrate.config import AwsSettings
        from northmigrate.examples.onboarding import migration
        from northmigrate.sources import open_source

        cap = args.concurrency or MAX_IN_FLIGHT
        clients = AwsClients(
            AwsSettings(endpoint_url=args.endpoint, region="us-east-1"), pool_size=cap + 4
        )
        client = clients.client("sqs")
        url = client.create_queue(QueueName=args.queue)["QueueUrl"]
        mark = Mark.now()
        report = enqueue.run(
            open_source(args.source),
            migration,
            max_message_size=262_144,
            sqs=client,
            queue_url=url,
            concurrency=cap,
        )
        assert report.failed == 0 and report.error is None, report.to_dict()
        child_report(report.enqueued, mark)
        return
    client = sqs(args.endpoint)
    url = client.create_queue(QueueName=args.queue)["QueueUrl"]
    with open(args.source) as handle:
        lines = [line.rstrip("\n") for line in itertools.islice(handle, args.max)]
    mark = Mark.now()
    if args.child == "per-record":
        for line in lines:
            client.send_message(QueueUrl=url, MessageBody=line)
    else:
        for start in range(0, len(lines), 10):
            entries = [
                {"Id": str(n), "MessageBody": body}
                for n, body in enumerate(lines[start : start + 10])
            ]
            response = client.send_message_batch(QueueUrl=url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]
    child_report(len(lines), mark)


def eligible_file(path: Path, count: int) -> Path:
    """``count`` valid, eligible onboarding records (the same for every contender)."""
    from northmigrate.records.sample import SampleGenerator

    gen = SampleGenerator(seed=11)
    with path.open("w") as out:
        for n in range(1, count + 1):
            record = gen.record(n)
            record["status"] = "approved" if n % 2 else "submitted"
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-ms", default="20,80", help="the proxies' added latencies")
    parser.add_argument("--concurrency", type=int, default=0, help="the cap (0: the default)")
    parser.add_argument("--validate-records", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--queue")
    parser.add_argument("--source")
    parser.add_argument("--max", type=int, default=None)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    work = Path(tempfile.mkdtemp(prefix="nm-bench-"))
    source = eligible_file(work / "eligible.jsonl", args.records)
    rows: list[Measure] = []
    with endpoints(*latencies(args.latency_ms)) as urls:
        for network, url in urls.items():
            ms = float(network.strip("+ ms")) if network != "loopback" else 0.0
            per_record = min(args.records, int(8_000 / ms) if ms else 2_000)
            batched = min(args.records, int(40_000 / ms) if ms else args.records)
            plans = [
                ("per-record loop", "per-record", per_record),
                ("batch loop", "batch", batched),
                ("northmigrate", "northmigrate", args.records),
            ]
            for name, mode, count in plans:
                print(f"… {name} on {network}: {count} records", file=sys.stderr)
                extra = (
                    ["--max", str(count)]
                    if mode != "northmigrate"
                    else ["--concurrency", str(args.concurrency)]
                )
                queue = f"bench-{uuid.uuid4().hex[:8]}"
                argv = [mode, "--endpoint", url, "--queue", queue, "--source", str(source), *extra]
                rows.append(run_child(HERE, argv, name, network))

    def baseline(m: Measure) -> Measure | None:
        wanted = "per-record loop" if m.network == "loopback" else "batch loop"
        return next((r for r in rows if r.network == m.network and r.contender == wanted), None)

    print_table(f"enqueue, {args.records} records, ministack ({machine()})", rows, baseline)
    by = {(r.network, r.contender): r for r in rows}
    print_kept(
        "enqueue: the share of its loopback rate kept, CPU against the batch loop",
        [(by[(n, "northmigrate")], by[(n, "batch loop")]) for n in urls],
    )
    nm, per, batch = (
        by[("loopback", "northmigrate")],
        by[("loopback", "per-record loop")],
        by[("loopback", "batch loop")],
    )
    checks = [
        (
            f"loopback: {nm.rate / per.rate:.1f}x the per-record loop (target >= 8x)",
            nm.rate >= 8 * per.rate,
        ),
        (
            f"loopback: CPU/record {nm.cpu_us / batch.cpu_us:.2f}x the batch loop (target <= 1.3)",
            nm.cpu_us <= 1.3 * batch.cpu_us,
        ),
    ]
    for network in urls:
        if network != "loopback":
            nm_p, batch_p = by[(network, "northmigrate")], by[(network, "batch loop")]
            checks.append(
                (
                    f"{network}: {nm_p.rate / batch_p.rate:.1f}x the batch loop (target >= 5x)",
                    nm_p.rate >= 5 * batch_p.rate,
                )
            )
    if "+20 ms" in urls:
        kept = by[("+20 ms", "northmigrate")].rate / nm.rate
        text = f"+20 ms: {kept:.2f} of the loopback rate kept (target >= 0.8)"
        checks.append((text, kept >= 0.8))

    if args.validate_records:
        from northmigrate.records import sample

        big = work / "validate.jsonl"
        print(f"… generating {args.validate_records} records for validate", file=sys.stderr)
        with big.open("w") as out:
            sample.write(sample.generate(args.validate_records, invalid_rate=0.01, seed=3), out)
        v = run_child(HERE, ["validate", "--source", str(big)], "validate", "local file")
        print_table(f"validate, {v.records} records", [v], lambda m: None)
        checks.append(
            (f"validate peak RSS {v.peak_rss_mb:.0f} MB (target < 150 MB)", v.peak_rss_mb < 150)
        )
        big.unlink()
    for text, ok in checks:
        print(("PASS " if ok else "MISS ") + text)


if __name__ == "__main__":
    main()
