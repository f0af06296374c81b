"""Benchmark: one source, several processes: ``dlq redrive --processes 1`` and ``2``, on the
same emulator, in one run.

    python bench/shards.py             # needs ministack: make ministack

Each run empties its own DLQ of dead letters (as bench/redrive.py fills it: onboarding
envelopes with the worker's failure entry and reason attributes) into its own main queue, on
plain loopback and through a latency proxy (bench/latency.py) adding 20 ms to each request:
with one process (the redrive the CLI runs without ``--processes``) and with two
(``northmigrate.dlq.processes.redrive_processes``, what ``--processes 2`` runs), ``--max``
the number of dead letters. Each row: messages/s over the whole run (the processes' start
included), CPU µs per message of the run's processes together (the parent and its
children), and the emulator's share of a core over the same window. Goal: above 1,000
messages/s at +20 ms with two processes.

The enqueue rows (1 and 2 shard processes of ``enqueue --shard I/N``) are not measured yet:
``--shard`` landed after this script; it says whether this build has it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import uuid
from pathlib import Path
from typing import Any

from _common import (
    Mark,
    Measure,
    depth,
    endpoints,
    latencies,
    machine,
    print_table,
    report,
    run_child,
)
from redrive import _fill

HERE = Path(__file__).resolve()
GOAL_AT_20MS = 1_000


def _cpu_with_children() -> float:
    """This process's CPU and that of its children that ended (the redrive's processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child(args: argparse.Namespace) -> None:
    from northmigrate.aws.clients import AwsClients
    from northmigrate.aws.inflight import MAX_IN_FLIGHT
    from northmigrate.config import AwsSettings
    from northmigrate.dlq.processes import Job, SqsFactory, redrive_processes
    from northmigrate.dlq.redrive import redrive

    settings = AwsSettings(endpoint_url=args.endpoint, region="us-east-1")
    client: Any = AwsClients(settings, pool_size=MAX_IN_FLIGHT + 8).client("sqs")
    dlq = client.create_queue(QueueName=args.queue + "-dlq")["QueueUrl"]
    main_url = client.create_queue(QueueName=args.queue)["QueueUrl"]
    _fill(client, dlq, args.count)
    mark, cpu = Mark.now(), _cpu_with_children()
    if args.processes == 1:
        result = redrive(client, dlq, main_url, max_messages=args.count)
    else:
        job = Job(
            SqsFactory(settings, pool_size=MAX_IN_FLIGHT + 8),
            dlq,
            main_url,
            max_messages=args.count,
            concurrency=MAX_IN_FLIGHT,
        )
        result = redrive_processes(client, job, args.processes)
    seconds, _, emulator_s = mark.until_now()
    report(result.moved, seconds, _cpu_with_children() - cpu, emulator_s)
    in_main, in_dlq = depth(client, main_url), depth(client, dlq)
    assert result.error is None and not result.died, result.to_dict()
    assert result.moved == args.count, f"moved {result.moved} of {args.count}"
    assert in_main == args.count and in_dlq == 0, f"main {in_main}, DLQ {in_dlq}"


def _enqueue_shards_available() -> bool:
    """Whether this build's ``enqueue`` takes ``--shard``."""
    from northmigrate.cli.app import build_command

    enqueue = build_command().commands["enqueue"]  # type: ignore[attr-defined]
    return any("--shard" in param.opts for param in enqueue.params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="dead letters to move")
    parser.add_argument("--latency-ms", default="20", help="the proxy's added latency")
    parser.add_argument("--processes", default="1,2", help="the process counts to compare")
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--queue")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        args.processes = int(args.child)
        child(args)
        return
    counts = [int(n) for n in args.processes.split(",")]
    rows: list[Measure] = []
    with endpoints(*latencies(args.latency_ms)) as urls:
        for network, url in urls.items():
            for n in counts:
                name = f"redrive --processes {n}"
                print(f"… {name} on {network}: {args.records}", file=sys.stderr)
                argv = [str(n), "--endpoint", url, "--queue", f"bench-{uuid.uuid4().hex[:8]}"]
                argv += ["--count", str(args.records)]
                rows.append(run_child(HERE, argv, name, network))

    def baseline(m: Measure) -> Measure | None:
        return next(r for r in rows if r.network == m.network and r.contender == rows[0].contender)

    print_table(f"redrive on several processes, ministack ({machine()})", rows, baseline, "message")
    if _enqueue_shards_available():
        print("enqueue --shard: in this build, not measured by this script yet; no enqueue rows")
    else:
        print("enqueue --shard: not in this build; no enqueue rows")
    for m in rows:
        line: dict[str, Any] = {
            "network": m.network,
            "contender": m.contender,
            "messages_per_s": round(m.rate),
            "cpu_us_per_message": round(m.cpu_us),
            "emulator_cores": None if m.emulator_cores is None else round(m.emulator_cores, 2),
        }
        if m.network == "+20 ms" and m.contender.endswith(" 2"):
            line["goal"] = GOAL_AT_20MS
            line["verdict"] = "PASS" if m.rate > GOAL_AT_20MS else "MISS"
        print(json.dumps(line))


if __name__ == "__main__":
    main()
