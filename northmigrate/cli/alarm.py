"""``alarm``: a CloudWatch alarm on the DLQ that fires on its first message."""

from __future__ import annotations

import typer

from northmigrate import dlq
from northmigrate.cli.output import OUTPUT_OPTION, OutputFormat, emit, key_value_table
from northmigrate.cli.state import state


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

    Examples:
      northmigrate alarm
      northmigrate alarm --email oncall@example.com
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
    app.command()(alarm)
