"""The Lambda side of ``status``: a function's last minutes from CloudWatch, best effort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.stub import ANY, Stubber
from helpers import aws_client

from northmigrate.consume.lambda_side import function_side, lambda_side
from northmigrate.consume.tap import MappingState

QUEUE_ARN = "arn:aws:sqs:us-east-1:111122223333:orders"
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
MAPPING = {
    "UUID": "a1b2c3d4-0000-4000-8000-00000000e5f6",
    "FunctionArn": "arn:aws:lambda:us-east-1:111122223333:function:orders-worker",
    "State": "Enabled",
}


def clients() -> tuple[Any, Any]:
    kw: dict[str, Any] = {"region_name": "us-east-1"}
    return aws_client("lambda", **kw), aws_client("cloudwatch", **kw)


def results(values: dict[str, list[float]]) -> dict[str, Any]:
    return {
        "MetricDataResults": [
            {"Id": key, "Label": key, "Values": v, "StatusCode": "Complete"}
            for key, v in values.items()
        ]
    }


def test_a_function_s_minutes_add_up_from_its_metrics() -> None:
    _, cloudwatch = clients()
    asked: list[Any] = []
    cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **kw: asked.append(params["MetricDataQueries"]),
    )
    with Stubber(cloudwatch) as stub:
        stub.add_response(
            "list_metrics",
            {
                "Metrics": [
                    {
                        "Namespace": "northmigrate",
                        "MetricName": "DeadLettered",
                        "Dimensions": [
                            {"Name": "Migration", "Value": "onboarding-v2"},
                            {"Name": "FailureKind", "Value": kind},
                        ],
                    }
                    for kind in ("exhausted", "permanent")
                ]
            },
            {
                "Namespace": "northmigrate",
                "MetricName": "DeadLettered",
                "Dimensions": [{"Name": "Migration", "Value": "onboarding-v2"}],
            },
        )
        stub.add_response(
            "get_metric_data",
            results(
                {
                    "m0": [10, 20],  # Invocations
                    "m1": [1],  # Errors
                    "m2": [0, 2],  # Throttles
                    "m3": [3, 7, 5],  # ConcurrentExecutions, the peak
                    "m4": [300, 450],  # Migrated
                    "m5": [6],  # DeadLettered, exhausted
                    "m6": [9],  # DeadLettered, permanent
                }
            ),
            {
                "MetricDataQueries": ANY,
                "StartTime": NOW - timedelta(minutes=15),
                "EndTime": NOW,
            },
        )
        side = function_side(cloudwatch, MappingState.from_api(MAPPING), "onboarding-v2", now=NOW)
        stub.assert_no_pending_responses()
    assert side.function == "orders-worker"
    assert (side.invocations, side.errors, side.throttles) == (30, 1, 2)
    assert side.peak_concurrency == 7
    assert side.to_dict()["migrated_per_min"] == 50.0  # 750 in 15 minutes
    assert side.to_dict()["dead_lettered_per_min"] == 1.0  # 6 + 9 in 15 minutes
    [queries] = asked
    metrics = {q["Id"]: q["MetricStat"]["Metric"] for q in queries}
    assert metrics["m0"]["Namespace"] == "AWS/Lambda"
    assert metrics["m0"]["Dimensions"] == [{"Name": "FunctionName", "Value": "orders-worker"}]
    assert metrics["m6"]["Dimensions"][-1] == {"Name": "FailureKind", "Value": "permanent"}


def test_no_mapping_no_function_and_the_plugin_is_not_asked() -> None:
    lam, cloudwatch = clients()
    with Stubber(lam) as stub:
        stub.add_response("list_event_source_mappings", {"EventSourceMappings": []})

        def never() -> str:
            raise AssertionError("the plugin was loaded for nothing")

        assert lambda_side(lam, cloudwatch, QUEUE_ARN, never) == []


def test_an_endpoint_without_lambda_gives_no_lambda_side() -> None:
    lam, cloudwatch = clients()
    with Stubber(lam) as stub:
        stub.add_client_error("list_event_source_mappings", "InternalFailure", http_status_code=500)
        assert lambda_side(lam, cloudwatch, QUEUE_ARN, lambda: "m") is None


def test_metrics_that_cannot_be_read_leave_the_function_without_figures() -> None:
    lam, cloudwatch = clients()
    with Stubber(lam) as lstub, Stubber(cloudwatch) as cstub:
        lstub.add_response("list_event_source_mappings", {"EventSourceMappings": [MAPPING]})
        cstub.add_client_error("list_metrics", "AccessDenied", http_status_code=403)
        [side] = lambda_side(lam, cloudwatch, QUEUE_ARN, lambda: "m") or []
    assert side.function == "orders-worker" and side.invocations is None
    assert side.to_dict()["migrated_per_min"] is None


def test_a_plugin_that_does_not_load_leaves_the_aws_lambda_figures() -> None:
    lam, cloudwatch = clients()

    def broken() -> str:
        raise ImportError("no module named plugin")

    with Stubber(lam) as lstub, Stubber(cloudwatch) as cstub:
        lstub.add_response("list_event_source_mappings", {"EventSourceMappings": [MAPPING]})
        cstub.add_response("get_metric_data", results({"m0": [4], "m1": [], "m2": [], "m3": [1]}))
        [side] = lambda_side(lam, cloudwatch, QUEUE_ARN, broken) or []
    assert side.invocations == 4 and side.migrated is None and side.dead_lettered is None
