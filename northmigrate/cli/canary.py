"""``dlq redrive --canary N``: the command's side of a canary redrive (northmigrate.dlq.canary)."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from northmigrate.cli.output import OutputFormat, emit, key_value_table, plain, say
from northmigrate.cli.state import State
from northmigrate.consume.events import JsonLines
from northmigrate.consume.presence import Readers, readers
from northmigrate.consume.tap import Tap
from northmigrate.dlq.canary import CanaryReport, canary_redrive
from northmigrate.dlq.redrive import redrive
from northmigrate.dlq.report import RedriveReport
from northmigrate.errors import EXIT_ATTENTION, EXIT_INTERRUPTED


def waiting_teller(output: OutputFormat) -> Callable[[dict[str, Any]], None]:
    """What the canary waits for, on stderr: a JSON line with --output json, else words;
    the warning when nothing reads the main queue comes at once."""

    def tell(event: dict[str, Any]) -> None:
        if output is OutputFormat.json:
            JsonLines(sys.stderr)(event)
            return
        lines = [f"waiting up to {event['wait_s']:.0f} s for {event['for']}"]
        if event.get("warning"):
            lines.append(f"Warning: {plain(event['warning'])}")
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    return tell


def _readers(st: State, destination: str) -> Callable[[], Readers] | None:
    """Who reads the destination, when it is the main queue (else nobody is asked)."""
    queues = st.queues()
    if destination != queues.main_url():
        return None
    return lambda: readers(Tap(st.clients(), queues))


def combined(first: RedriveReport, rest: RedriveReport | None) -> RedriveReport:
    """The canary's move and the rest's as one redrive report."""
    if rest is None:
        return first
    reasons: Counter[str] = Counter(first.failure_reasons)
    reasons.update(rest.failure_reasons)
    out = RedriveReport(source=first.source, destination=first.destination, mode=first.mode)
    out.matched = first.matched + rest.matched
    out.moved = first.moved + rest.moved
    out.failed = first.failed + rest.failed
    out.delete_failed = first.delete_failed + rest.delete_failed
    out.read = first.read + rest.read
    out.skipped = rest.skipped  # the second pass read every letter the first skipped
    out.failure_reasons = reasons
    out.ended = rest.ended
    out.interrupted = rest.interrupted
    out.duration_s = first.duration_s + rest.duration_s
    out.in_flight, out.back_within_s = first.in_flight, first.back_within_s
    out.error = first.error or rest.error
    return out


def _render(report: CanaryReport, console: Console) -> None:
    rows: list[tuple[str, object]] = [
        (c.record_id or "(no record id)", c.state + (f": {c.reason}" if c.reason else ""))
        for c in report.canaries
    ]
    console.print(key_value_table(report.summary(), rows))
    total = combined(report.moved, report.rest)
    console.print(
        key_value_table(
            "redrive",
            [
                ("from", total.source),
                ("to", total.destination),
                ("moved", total.moved),
                ("skipped (no match)", total.skipped),
                ("failed (still in DLQ)", total.failed),
            ],
        )
    )


def plan(
    st: State, source: str, destination: str, size: int, wait_s: float, kwargs: dict[str, Any],
    max_messages: int | None, output: OutputFormat,
) -> None:  # fmt: skip
    """``--canary N --dry-run``: what would move first, and then."""
    dry = redrive(
        st.clients().client("sqs"),
        source,
        destination,
        dry_run=True,
        max_messages=max_messages,
        **kwargs,
    )
    first = min(size, dry.matched)
    data = dry.to_dict() | {
        "canary": {"requested": size, "would_move": first, "then": dry.matched - first,
                   "wait_s": wait_s},
    }  # fmt: skip
    emit(
        output,
        data,
        lambda console: console.print(
            key_value_table(
                "redrive with a canary (dry run)",
                [
                    ("matched", dry.matched),
                    ("canary, moved first", first),
                    ("waited for, at most", f"{wait_s:.0f} s"),
                    ("then, if every canary is migrated", dry.matched - first),
                ],
            )
        ),
    )


def outcome(report: CanaryReport) -> dict[str, Any]:
    """The JSON of a canary redrive: the moves as one redrive report, and the canary.

    ``interrupted`` is true when a signal stopped any part: the first move, the wait for the
    verdict (the moves themselves then ended normally), or the rest."""
    total = combined(report.moved, report.rest)
    data = total.to_dict() | {"canary": report.to_dict()}
    data["interrupted"] = bool(total.interrupted or report.interrupted)
    if total.error is not None:
        data["error"] = str(total.error)
    return data


def run(
    st: State, source: str, destination: str, size: int, wait_s: float, kwargs: dict[str, Any],
    max_messages: int | None, stop: threading.Event, output: OutputFormat,
) -> None:  # fmt: skip
    """Move the canary, wait for its verdict, move the rest when it passed; exit 1 when not."""
    if output is OutputFormat.table:
        say("moving a canary of {} and waiting up to {} s for it", size, f"{wait_s:.0f}")
    report = canary_redrive(
        st.clients().client("sqs"),
        source,
        destination,
        migration=st.migration,
        clients=st.clients(),
        options=dict(st.settings.migration.options),
        size=size,
        wait_s=wait_s,
        redrive_kwargs=kwargs,
        max_messages=max_messages,
        stop=stop,
        on_wait=waiting_teller(output),
        readers=_readers(st, destination),
    )
    total = combined(report.moved, report.rest)
    emit(output, outcome(report), lambda console: _render(report, console))
    if total.error is not None:
        raise total.error
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not report.canaries:  # nothing matched: nothing to move, as a plain redrive
        return
    if not report.passed:  # the verdict is the title of the table (or in the JSON): once
        raise typer.Exit(EXIT_ATTENTION)
    if total.failed or total.in_flight:
        raise typer.Exit(EXIT_ATTENTION)
