"""Where an enqueue's client CPU goes, on loopback, against the plain batch loop.

    python bench/enqueue_cpu.py [--records 10000] [--rounds 4]

`bench/enqueue.py` measures the whole command against its baselines; this one takes it
apart, in one process, on one ministack, with one client, the same records for every
stage, and prints the median client CPU (user + system) per record over ``--rounds``
rounds. Each stage adds one thing to the one before:

- batch loop: the plain records, 10 to a SendMessageBatch, one thread (the baseline);
- + envelope and attribute: the envelope bodies and the record-id attribute, built in
  advance, sent the same way;
- read and check only: reading the file, pydantic validation and building the envelope,
  nothing sent;
- check then send, one thread: validate 100 records, send them, repeat;
- enqueue: `northmigrate.enqueue.job.run`, batches in flight on ``--concurrency`` threads.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import endpoints, machine
from enqueue import eligible_file
from rich.console import Console
from rich.table import Table

from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings
from northmigrate.enqueue.job import run as enqueue_records
from northmigrate.examples.onboarding import migration
from northmigrate.records.validation import OutMessage, Validator
from northmigrate.sources import open_source

CHUNK = 100


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def validator() -> Validator:
    return Validator(migration, max_message_size=262_144, run_id="bench", source_name="bench")


def entry(n: int, message: OutMessage) -> dict[str, Any]:
    return {"Id": str(n), "MessageBody": message.body, "MessageAttributes": message.attributes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    count = args.records - args.records % CHUNK
    source = eligible_file(Path(tempfile.mkdtemp(prefix="nm-bench-")) / "e.jsonl", count)
    lines = source.read_text().splitlines()
    check = validator()
    messages = [check.check(item).message for item in open_source(str(source))]
    assert all(m is not None for m in messages)
    built: list[OutMessage] = [m for m in messages if m is not None]

    with endpoints(0) as urls:
        clients = AwsClients(
            AwsSettings(endpoint_url=urls["loopback"], region="us-east-1"),
            pool_size=args.concurrency + 4,
        )
        client = clients.client("sqs")

        def queue() -> str:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            return str(client.create_queue(QueueName=name)["QueueUrl"])

        def batch_loop() -> None:
            url = queue()
            for start in range(0, count, 10):
                entries = [
                    {"Id": str(n), "MessageBody": body}
                    for n, body in enumerate(lines[start : start + 10])
                ]
                client.send_message_batch(QueueUrl=url, Entries=entries)

        def enveloped() -> None:
            url = queue()
            for start in range(0, count, 10):
                entries = [entry(n, m) for n, m in enumerate(built[start : start + 10])]
                client.send_message_batch(QueueUrl=url, Entries=entries)

        def check_only() -> None:
            fresh = validator()
            for item in open_source(str(source)):
                fresh.check(item)

        def check_then_send() -> None:
            url, fresh, chunk = queue(), validator(), []
            for item in open_source(str(source)):
                message = fresh.check(item).message
                assert message is not None
                chunk.append(message)
                if len(chunk) == CHUNK:
                    for start in range(0, CHUNK, 10):
                        entries = [entry(n, m) for n, m in enumerate(chunk[start : start + 10])]
                        client.send_message_batch(QueueUrl=url, Entries=entries)
                    chunk = []

        def enqueue_run() -> None:
            report = enqueue_records(
                open_source(str(source)),
                migration,
                max_message_size=262_144,
                sqs=client,
                queue_url=queue(),
                concurrency=args.concurrency,
            )
            assert report.enqueued == count and report.failed == 0, report.to_dict()

        stages: list[tuple[str, Callable[[], None]]] = [
            ("batch loop", batch_loop),
            ("+ envelope and attribute", enveloped),
            ("read and check only", check_only),
            ("check then send, one thread", check_then_send),
            (f"enqueue, {args.concurrency} sender threads", enqueue_run),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in stages}
        for round_ in range(args.rounds):
            print(f"… round {round_ + 1} of {args.rounds}", file=sys.stderr)
            for name, stage in stages:  # interleaved, so drift hits every stage alike
                started = cpu()
                stage()
                samples[name].append((cpu() - started) / count * 1e6)
                time.sleep(0.2)

    base = statistics.median(samples["batch loop"])
    table = Table(title=f"enqueue client CPU, {count} records, ministack ({machine()})")
    for column in ("stage", "median µs/record", "x batch loop", "rounds µs/record"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, values in samples.items():
        median = statistics.median(values)
        table.add_row(
            name,
            f"{median:,.0f}",
            "—" if name == "read and check only" else f"{median / base:.2f}x",
            " ".join(f"{v:.0f}" for v in values),
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
