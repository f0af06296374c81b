"""``status`` (both queues and the last run's progress) and ``alarm`` (CloudWatch on the DLQ)."""

from __future__ import annotations

import typer
from rich.console import Console

from northmigrate import dlq
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, key_value_table
from northmigrate.cli.state import state


def _render_status(report: dlq.StatusReport, console: Console) -> None:
    rows: list[tuple[str, object]] = [
        ("", f"{report.main_queue} / {report.dlq}"),
        ("visible", f"{report.main.visible} / {report.dead.visible}"),
        ("in flight", f"{report.main.in_flight} / {report.dead.in_flight}"),
        ("delayed", f"{report.main.delayed} / {report.dead.delayed}"),
    ]
    console.print(key_value_table("queues (main / dlq)", rows))
    progress = report.progress
    lines: list[tuple[str, object]] = [
        ("remaining in the main queue", progress["remaining"]),
        ("dead-lettered", progress["dead_lettered"]),
    ]
    if "run_id" in progress:
        lines = [
            ("run id", progress["run_id"]),
            ("enqueued", progress["enqueued"]),
            ("done", f"{progress['done']} ({progress['done_pct']}%)"),
            *lines,
        ]
    console.print(key_value_table("progress", lines))


def status(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Depths of the main queue and the DLQ side by side, and the progress of the last run.

    Progress: messages still in the main queue and in the DLQ; with a run state file
    (.northmigrate/last-run.json) also how many of the last run's records are done.
    """
    queues = state(ctx).queues()
    report = dlq.status(queues.sqs, queues.main_url(), queues.dlq_url())
    emit(output, report.to_dict(), lambda console: _render_status(report, console))


def alarm(
    ctx: typer.Context,
    threshold: int = typer.Option(
        1, "--threshold", min=1, help="Fire at this many visible messages."
    ),
    sns_topic: str | None = typer.Option(
        None, "--sns-topic", metavar="NAME", help="Notify this SNS topic (created if missing)."
    ),
    email: str | None = typer.Option(
        None, "--email", metavar="ADDRESS", help="Subscribe this address to the topic."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Alarm name (default: <dlq name>-not-empty)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create (or update) a CloudWatch alarm on the DLQ: fires on its first message.

    ApproximateNumberOfMessagesVisible >= threshold for one minute; optionally notifies an
    SNS topic, with an email subscription (to be confirmed by its recipient).
    """
    st = state(ctx)
    clients = st.clients()
    report = dlq.create_alarm(
        clients.client("cloudwatch"),
        st.settings.queue.dead_letter_name,
        sns=clients.client("sns") if sns_topic else None,
        threshold=threshold,
        alarm_name=name,
        topic=sns_topic,
        email=email,
    )
    emit(
        output,
        report.to_dict(),
        lambda console: console.print(
            key_value_table(
                "alarm",
                [
                    ("alarm", report.alarm_name),
                    ("queue", report.queue),
                    ("fires at", f"{report.metric} >= {report.threshold}"),
                    ("topic", report.topic_arn),
                    (
                        "email",
                        f"{report.subscribed} (confirm the mail)" if report.subscribed else None,
                    ),
                ],
            )
        ),
    )


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(alarm)
