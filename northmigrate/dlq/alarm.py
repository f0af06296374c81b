"""``alarm``: a CloudWatch alarm that fires on the first dead letter, optionally via SNS.

The alarm watches the DLQ's ``ApproximateNumberOfMessagesVisible`` (namespace ``AWS/SQS``,
maximum over one minute) and fires when it is at or over the threshold (default 1) for one
period; missing data is "not breaching" (SQS stops sending the metric for an idle queue
after a while). With a topic, the alarm and its recovery notify it; with an email address,
the address is subscribed (the recipient must confirm the subscription). Everything is
idempotent: running it again updates the alarm in place and reuses the topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import aws_errors
from northmigrate.errors import InputError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sns import SNSClient


METRIC = "ApproximateNumberOfMessagesVisible"


@dataclass(frozen=True)
class AlarmReport:
    alarm_name: str
    queue: str
    metric: str
    threshold: int
    topic_arn: str | None
    subscribed: str | None
    subscription_arn: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alarm_name": self.alarm_name,
            "queue": self.queue,
            "metric": self.metric,
            "threshold": self.threshold,
            "topic_arn": self.topic_arn,
            "subscribed": self.subscribed,
            "subscription_arn": self.subscription_arn,
        }


def default_alarm_name(dlq_name: str) -> str:
    return f"{dlq_name}-not-empty"


def alarm_settings(dlq_name: str, threshold: int | str, period_s: int = 60) -> dict[str, Any]:
    """What the alarm watches and when it fires (``alarm`` and ``deploy --template`` alike);
    ``threshold`` a number, or a template's parameter (``deploy.intrinsics.ref``)."""
    return {
        "AlarmDescription": (
            f"Dead letters in {dlq_name}: at least {threshold} message(s) visible. "
            "See: northmigrate dlq inspect"
        ),
        "Namespace": "AWS/SQS",
        "MetricName": METRIC,
        "Dimensions": [{"Name": "QueueName", "Value": dlq_name}],
        "Statistic": "Maximum",
        "Period": period_s,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": float(threshold) if isinstance(threshold, int) else threshold,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def create_alarm(
    cloudwatch: CloudWatchClient,
    dlq_name: str,
    *,
    sns: SNSClient | None = None,
    threshold: int = 1,
    alarm_name: str | None = None,
    topic: str | None = None,
    email: str | None = None,
    period_s: int = 60,
) -> AlarmReport:
    if threshold < 1:
        raise InputError("--threshold must be at least 1")
    if email is not None and topic is None:
        raise InputError("--email needs --sns-topic NAME (the topic to subscribe it to)")
    if email is not None and "@" not in email:
        raise InputError(f"--email {email!r} is not an email address")
    topic_arn = subscription_arn = None
    if topic is not None:
        if sns is None:
            raise InputError("an SNS client is needed for --sns-topic")
        with aws_errors(f"SNS CreateTopic {topic}"):
            topic_arn = str(sns.create_topic(Name=topic)["TopicArn"])
        if email is not None:
            with aws_errors(f"SNS Subscribe {email} to {topic}"):
                subscription_arn = str(
                    sns.subscribe(
                        TopicArn=topic_arn,
                        Protocol="email",
                        Endpoint=email,
                        ReturnSubscriptionArn=True,
                    ).get("SubscriptionArn", "")
                )
    name = alarm_name or default_alarm_name(dlq_name)
    actions = [topic_arn] if topic_arn else []
    with aws_errors(f"CloudWatch PutMetricAlarm {name}"):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            ActionsEnabled=True,
            AlarmActions=actions,
            OKActions=actions,
            **alarm_settings(dlq_name, threshold, period_s),
        )
    return AlarmReport(
        alarm_name=name,
        queue=dlq_name,
        metric=METRIC,
        threshold=threshold,
        topic_arn=topic_arn,
        subscribed=email,
        subscription_arn=subscription_arn,
    )
