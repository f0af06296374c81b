"""Benchmark: one source, several processes: ``enqueue --shard I/N`` with 1 and 2 shards, and
``dlq redrive --processes 1`` and ``2``, on the same emulator, in one run.

    python bench/shards.py             # needs ministack: make ministack

Enqueue: a JSONL file of eligible onboarding records (bench/enqueue.py's, 20,000 by default,
``--enqueue-records``) sent into a fresh queue by the real CLI, as a user runs it: one
process ``northmigrate enqueue FILE --shard 0/1 --output json``, then two at once, ``--shard
0/2`` and ``--shard 1/2``, configured by the environment alone (``AWS_ENDPOINT_URL``,
``NORTHMIGRATE_QUEUE__NAME``, ``NORTHMIGRATE_MIGRATION__PLUGIN``). The CLI's start (about
0.6 s of CPU to import it, per process) is part of what a user waits for, and at this size it
is a small part of the run, so it is measured, not left out. After each run the queue must
hold exactly the file's records, and the shards' JSON must say ``"shard": "I/N"`` with
``enqueued`` counts that add up to them; the run fails otherwise.

Redrive: each run empties its own DLQ of dead letters (as bench/redrive.py fills it:
onboarding envelopes with the worker's failure entry and reason attributes) into its own
main queue, with one process (the redrive the CLI runs without ``--processes``) and with two
(``northmigrate.dlq.processes.redrive_processes``, what ``--processes 2`` runs), ``--max``
the number of dead letters (``--records``, 10,000 by default).

Both on plain loopback and through a latency proxy (bench/latency.py) adding 20 ms to each
request. Each row: records (messages) a second over the whole run, from the start of the
first process to the end of the last (the processes' start included); CPU µs per record of
the run's processes together (``RUSAGE_CHILDREN``, and the redrive's parent); and the
emulator's share of a core over the same window. Each queue is deleted after its row.

Goals: redrive above 1,000 messages/s at +20 ms with two processes; enqueue with two shards
at least 1.5x one shard's rate where the client is the limit (the verdict is given on each
network, beside the client's and the emulator's shares of a core, which say where the limit
was).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    Mark,
    Measure,
    depth,
    endpoints,
    latencies,
    load,
    machine,
    print_table,
    report,
    run_child,
    sqs,
)
from enqueue import eligible_file
from redrive import _fill

HERE = Path(__file__).resolve()
GOAL_AT_20MS = 1_000
ENQUEUE_GOAL = 1.5  # two shards against one
PLUGIN = "northmigrate.examples.onboarding:migration"


def _cpu_with_children() -> float:
    """This process's CPU and that of its children that ended (the redrive's processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _children_cpu() -> float:
    """The CPU of this process's children that ended (the enqueue's CLI processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


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
    for url in (main_url, dlq):
        client.delete_queue(QueueUrl=url)


def _cli() -> list[str]:
    """The ``northmigrate`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "northmigrate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "northmigrate"]


def enqueue_child(args: argparse.Namespace) -> None:
    """``args.shards`` CLI processes at once, ``enqueue FILE --shard I/N``, into a fresh
    queue; measured from the first one's start to the last one's end."""
    client = sqs(args.endpoint)
    url = client.create_queue(QueueName=args.queue)["QueueUrl"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORTHMIGRATE_", "AWS_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": args.endpoint,
        "NORTHMIGRATE_QUEUE__NAME": args.queue,
        "NORTHMIGRATE_MIGRATION__PLUGIN": PLUGIN,
        "NO_COLOR": "1",
    }
    n = args.shards
    work = Path(tempfile.mkdtemp(prefix="nm-bench-shards-"))  # no config file; its state dir
    outs = [(work / f"{i}.out", work / f"{i}.err") for i in range(n)]
    mark, cpu = Mark.now(), _children_cpu()
    procs = []
    for i, (out, err) in enumerate(outs):
        with out.open("w") as stdout, err.open("w") as stderr:
            argv = [*_cli(), "enqueue", args.source, "--shard", f"{i}/{n}", "--output", "json"]
            procs.append(subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=work))
    codes = [p.wait() for p in procs]
    seconds, _, emulator_s = mark.until_now()
    cpu_s = _children_cpu() - cpu
    failed = [
        (i, code, err.read_text()[-2000:])
        for i, ((_, err), code) in enumerate(zip(outs, codes, strict=True))
        if code
    ]
    assert not failed, f"enqueue shards failed (index, exit, stderr): {failed}"
    summaries = [json.loads(out.read_text()) for out, _ in outs]
    shards = [s.get("shard") for s in summaries]
    assert shards == [f"{i}/{n}" for i in range(n)], f"the shards said {shards}"
    enqueued = [int(s["enqueued"]) for s in summaries]
    assert sum(enqueued) == args.count, f"enqueued {enqueued}, sum {sum(enqueued)} of {args.count}"
    assert all(s["failed"] == 0 for s in summaries), summaries
    in_queue = depth(client, url)
    assert in_queue == args.count, f"the queue holds {in_queue} of {args.count}"
    own = ", ".join(f"{s['duration_s']:.1f}" for s in summaries)
    print(f"  the shards' own sending: {own} s of {seconds:.1f} s", file=sys.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest
    report(sum(enqueued), seconds, cpu_s, emulator_s, peak_mb)
    client.delete_queue(QueueUrl=url)


def _pair(rows: list[Measure], network: str, one: str, two: str) -> tuple[Measure, Measure] | None:
    """The rows ``one`` and ``two`` on ``network``, when both ran."""
    by = {(r.network, r.contender): r for r in rows}
    if (network, one) in by and (network, two) in by:
        return by[(network, one)], by[(network, two)]
    return None


def _cores(m: Measure | None) -> float | None:
    return None if m is None or not m.seconds else m.cpu_s / m.seconds


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="dead letters to move")
    parser.add_argument("--enqueue-records", type=int, default=20_000, help="records to send")
    parser.add_argument("--latency-ms", default="20", help="the proxy's added latency")
    parser.add_argument("--processes", default="1,2", help="the redrive process counts")
    parser.add_argument("--shards", default="1,2", help="the enqueue shard counts")
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--queue")
    parser.add_argument("--source")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.child == "enqueue":
        args.shards = int(args.shards)
        enqueue_child(args)
        return
    if args.child:
        args.processes = int(args.child)
        child(args)
        return
    started_load = load()
    counts = [int(n) for n in args.processes.split(",")]
    shard_counts = [int(n) for n in args.shards.split(",")]
    work = Path(tempfile.mkdtemp(prefix="nm-bench-"))
    source = eligible_file(work / "eligible.jsonl", args.enqueue_records)
    enqueue_rows: list[Measure] = []
    redrive_rows: list[Measure] = []
    with endpoints(*latencies(args.latency_ms)) as urls:
        for network, url in urls.items():
            for n in shard_counts:
                name = _shard_name(n)
                print(f"… {name} on {network}: {args.enqueue_records}", file=sys.stderr)
                argv = ["--endpoint", url, "--queue", f"bench-{uuid.uuid4().hex[:8]}"]
                argv += ["--source", str(source), "--count", str(args.enqueue_records)]
                argv += ["--shards", str(n)]
                enqueue_rows.append(run_child(HERE, ["enqueue", *argv], name, network))
            for n in counts:
                name = f"redrive --processes {n}"
                print(f"… {name} on {network}: {args.records}", file=sys.stderr)
                argv = [str(n), "--endpoint", url, "--queue", f"bench-{uuid.uuid4().hex[:8]}"]
                argv += ["--count", str(args.records)]
                redrive_rows.append(run_child(HERE, argv, name, network))
    source.unlink()

    def first_of(rows: list[Measure]) -> Callable[[Measure], Measure | None]:
        """The baseline of a row: the first contender of its table on its network."""

        def baseline(m: Measure) -> Measure | None:
            first = rows[0].contender
            return next(r for r in rows if r.network == m.network and r.contender == first)

        return baseline

    print_table(
        f"enqueue --shard I/N, {args.enqueue_records} records, ministack ({machine()})",
        enqueue_rows,
        first_of(enqueue_rows),
    )
    print_table(
        f"redrive on several processes, ministack ({machine()})",
        redrive_rows,
        first_of(redrive_rows),
        "message",
    )
    print(f"load at the start: {started_load}; at the end: {load()} ({os.cpu_count()} cores)")
    verdicts: list[str] = []
    for m in enqueue_rows:
        line: dict[str, Any] = {
            "network": m.network,
            "contender": m.contender,
            "records_per_s": round(m.rate),
            "cpu_us_per_record": round(m.cpu_us),
            "client_cores": _round(_cores(m)),
            "emulator_cores": _round(m.emulator_cores),
        }
        pair = _pair(enqueue_rows, m.network, _shard_name(1), _shard_name(2))
        if pair is not None and m is pair[1]:
            one, two = pair
            ratio = two.rate / one.rate if one.rate else 0.0
            ok = ratio >= ENQUEUE_GOAL
            line |= {"x_one_shard": round(ratio, 2), "goal": ENQUEUE_GOAL, "verdict": _v(ok)}
            verdicts.append(
                f"{_v(ok)} enqueue, {m.network}: 2 shards {ratio:.2f}x one shard "
                f"({two.rate:,.0f} against {one.rate:,.0f} records/s; target >= "
                f"{ENQUEUE_GOAL}x); one shard's client {_fmt(_cores(one))} of a core, "
                f"the emulator {_fmt(one.emulator_cores)}; with two: {_fmt(_cores(two))} "
                f"and {_fmt(two.emulator_cores)}"
            )
        print(json.dumps(line))
    for m in redrive_rows:
        line = {
            "network": m.network,
            "contender": m.contender,
            "messages_per_s": round(m.rate),
            "cpu_us_per_message": round(m.cpu_us),
            "client_cores": _round(_cores(m)),
            "emulator_cores": _round(m.emulator_cores),
        }
        if m.network == "+20 ms" and m.contender.endswith(" 2"):
            ok = m.rate > GOAL_AT_20MS
            line |= {"goal": GOAL_AT_20MS, "verdict": _v(ok)}
            verdicts.append(
                f"{_v(ok)} redrive, +20 ms: 2 processes {m.rate:,.0f} messages/s (target > "
                f"{GOAL_AT_20MS:,}); client {_fmt(_cores(m))} of a core, the emulator "
                f"{_fmt(m.emulator_cores)}"
            )
        print(json.dumps(line))
    for text in verdicts:
        print(text)


def _shard_name(n: int) -> str:
    return f"enqueue, {n} shard" + ("s" if n > 1 else "")


def _v(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _fmt(cores: float | None) -> str:
    return "—" if cores is None else f"{cores:.2f}"


if __name__ == "__main__":
    main()
