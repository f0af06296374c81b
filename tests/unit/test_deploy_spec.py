"""The desired stack: names, the visibility rule, the least-privilege policy, the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings, Settings, load_settings
from northmigrate.deploy.spec import (
    build_spec,
    environment,
    function_name,
    role_name,
)
from northmigrate.errors import ConfigError, PluginError
from northmigrate.examples.onboarding import OnboardingRecord, migration
from northmigrate.plugin import Migration, MigrationContext
from northmigrate.records.sample import SampleGenerator

QUEUE_ARN = "arn:aws:sqs:eu-west-1:111122223333:orders"
DLQ_ARN = "arn:aws:sqs:eu-west-1:111122223333:orders-dlq"


def settings(tmp_path: Path, extra: str = "", queue: str = "orders") -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[queue]\nname = "{queue}"\nvisibility_timeout = 180\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
        '[migration.options]\ntable = "target"\nCamelKey = "kept"\n'
        'outage_regions = ["ON", "QC"]\nnested = {deep = 1.5, flag = true}\n' + extra
    )
    return load_settings(path, env={})


def spec_for(s: Settings, visibility: int = 180, plugin: Migration[Any] = migration) -> Any:
    return build_spec(
        s, plugin, queue_arn=QUEUE_ARN, dlq_arn=DLQ_ARN, visibility_timeout=visibility
    )


def test_names_default_from_the_queue_and_stay_within_aws_limits(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert function_name(s) == "orders-worker"
    assert role_name(s) == "orders-worker-role"
    fifo = settings(tmp_path, queue="orders.fifo")
    assert function_name(fifo) == "orders-fifo-worker"  # no dot in a function name
    long = settings(tmp_path, queue="q" * 80)
    assert len(function_name(long)) <= 64 and len(role_name(long)) <= 64
    other = settings(tmp_path, queue="q" * 79 + "x")
    assert function_name(other) != function_name(long)  # a digest keeps them apart
    named = settings(tmp_path, '[deploy]\nfunction_name = "mine"\nrole_name = "r"\n')
    assert (function_name(named), role_name(named)) == ("mine", "r")


def test_timeout_defaults_to_a_sixth_of_the_visibility_timeout(tmp_path: Path) -> None:
    assert spec_for(settings(tmp_path), visibility=180).timeout_s == 30
    assert spec_for(settings(tmp_path), visibility=60).timeout_s == 10


def test_a_visibility_timeout_under_six_times_the_function_timeout_is_refused(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path, "[deploy]\ntimeout_s = 60\n")
    with pytest.raises(ConfigError) as caught:
        spec_for(s, visibility=300)
    text = str(caught.value)
    assert caught.value.exit_code == 2
    assert "300 s" in text and "360 s" in text
    assert "queue.visibility_timeout = 360" in text and "deploy.timeout_s = 50" in text
    assert spec_for(s, visibility=360).timeout_s == 60


def test_fifo_and_large_batches_are_checked_as_aws_would(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batching window of at least 1 s"):
        spec_for(settings(tmp_path, "[deploy]\nbatch_size = 100\n"))
    assert spec_for(settings(tmp_path, "[deploy]\nbatch_size = 100\nbatching_window_s = 2\n"))
    with pytest.raises(ConfigError, match="FIFO queue takes 1 to 10"):
        spec_for(settings(tmp_path, "[deploy]\nbatch_size = 20\n", queue="o.fifo"))


def test_policy_is_least_privilege_statement_by_statement(tmp_path: Path) -> None:
    spec = spec_for(settings(tmp_path))
    by_sid = {st.get("Sid", f"plugin{i}"): st for i, st in enumerate(spec.policy["Statement"])}
    assert by_sid["ConsumeMainQueue"]["Action"] == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",  # a retry is a delayed copy sent back to the main queue
    ]
    assert by_sid["ConsumeMainQueue"]["Resource"] == QUEUE_ARN
    assert by_sid["DeadLetter"]["Action"] == ["sqs:GetQueueUrl", "sqs:SendMessage"]
    assert by_sid["DeadLetter"]["Resource"] == DLQ_ARN
    group = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/orders-worker"
    assert by_sid["OwnLogGroup"]["Resource"] == [group, group + ":*"]
    assert by_sid["OwnLogGroup"]["Action"] == [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    # the guard: its own queue's tags and its own function's mapping, nothing else
    assert by_sid["GuardClosesTheTap"]["Action"] == [
        "sqs:ListQueueTags",
        "sqs:TagQueue",
        "sqs:UntagQueue",  # the probe opens the tap again; throttling lowers its limit
    ]
    assert by_sid["GuardClosesTheTap"]["Resource"] == QUEUE_ARN
    mapping = by_sid["GuardDisablesItsMapping"]
    assert mapping["Action"] == ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"]
    assert mapping["Condition"] == {
        "StringEquals": {
            "lambda:FunctionArn": "arn:aws:lambda:eu-west-1:111122223333:function:orders-worker"
        }
    }
    table = by_sid["plugin5"]
    assert table["Resource"] == "arn:aws:dynamodb:eu-west-1:111122223333:table/target"
    assert table["Action"] == ["dynamodb:PutItem"]  # verify's reads are the operator's
    assert len(spec.policy["Statement"]) == 6
    for statement in spec.policy["Statement"]:
        actions = statement["Action"]
        assert all("*" not in a for a in ([actions] if isinstance(actions, str) else actions))
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            assert resource != "*" and ":*:" not in resource


def test_a_function_without_the_guard_gets_no_guard_rights(tmp_path: Path) -> None:
    spec = spec_for(settings(tmp_path, "[guard]\nenabled = false\n"))
    sids = {st.get("Sid") for st in spec.policy["Statement"]}
    assert "GuardClosesTheTap" not in sids and "GuardDisablesItsMapping" not in sids
    assert spec.environment["NORTHMIGRATE_GUARD__ENABLED"] == "false"


def declaring(*statements: Any) -> Migration[Any]:
    return Migration(
        name="greedy",
        model=OnboardingRecord,
        key="application_id",
        handler=lambda record, ctx: None,
        iam_statements=lambda o, r, a: list(statements),
    )


TABLE_ARN = "arn:aws:dynamodb:eu-west-1:111122223333:table/target"
GOOD = {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE_ARN}


def test_a_plugin_asking_for_a_wildcard_action_is_refused(tmp_path: Path) -> None:
    greedy = declaring({"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE_ARN})
    with pytest.raises(PluginError, match="wildcard action 'dynamodb:\\*'"):
        spec_for(settings(tmp_path), plugin=greedy)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ({"Effect": "Allow", "Action": "s3:?etObject", "Resource": "arn:aws:s3:::b/*"},
         "wildcard action 's3:\\?etObject'"),
        ({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "arn:aws:s3:::b/*"},
         "wildcard action '\\*'"),
        ({"Effect": "Deny", "Action": "s3:*", "Resource": "*"}, "wildcard action 's3:\\*'"),
        ({"Effect": "Allow", "NotAction": "iam:CreateUser", "Resource": TABLE_ARN},
         "NotAction"),
        ({"Effect": "Allow", "Action": "dynamodb:PutItem", "NotResource": TABLE_ARN},
         "NotResource"),
        ({**GOOD, "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}}, "NotPrincipal"),
        ({**GOOD, "Principal": "*"}, "Principal"),
        ({**GOOD, "Effect": "allow"}, "Effect 'allow'"),
        ({"Action": "dynamodb:PutItem", "Resource": TABLE_ARN}, "Effect None"),
        ({"Effect": "Allow", "Resource": TABLE_ARN}, "no Action"),
        ({"Effect": "Allow", "Action": [], "Resource": TABLE_ARN}, "no Action"),
        ({"Effect": "Allow", "Action": "dynamodb:PutItem"}, "no Resource"),
        ({"Effect": "Allow", "Action": 7, "Resource": TABLE_ARN}, "Action 7"),
        ({"Effect": "Allow", "Action": "PutItem", "Resource": TABLE_ARN}, "Action 'PutItem'"),
        ({**GOOD, "Actions": ["dynamodb:DeleteTable"]}, "unknown key 'Actions'"),
        ({**GOOD, "Resource": "*"}, "wildcard resource '\\*'"),
        ({**GOOD, "Resource": [TABLE_ARN, "arn:aws:dynamodb:eu-west-1:111122223333:*"]},
         "wildcard resource"),
        ({**GOOD, "Resource": "arn:aws:s3:::*"}, "wildcard resource"),
        ({**GOOD, "Resource": "arn:aws:s3:::*/*"}, "wildcard resource"),
        ({**GOOD, "Resource": "arn:aws:dynamodb:eu-west-1:111122223333:table/*"},
         "wildcard resource"),
        ({**GOOD, "Resource": "arn:*"}, "not an ARN"),
        ({**GOOD, "Resource": "target"}, "not an ARN"),
        ("Allow everything", "not a JSON object"),
    ],
)  # fmt: skip
def test_plugin_statements_that_grant_more_than_they_name_are_refused(
    tmp_path: Path, statement: Any, message: str
) -> None:
    with pytest.raises(PluginError, match=message) as caught:
        spec_for(settings(tmp_path), plugin=declaring(GOOD, statement))
    assert "greedy: iam_statements()[1]" in str(caught.value)  # which statement
    assert caught.value.exit_code == 2


def test_a_wildcard_resource_is_allowed_where_it_is_safe_or_allowed_by_config(
    tmp_path: Path,
) -> None:
    fine = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"},
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": "*"},
        {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": f"{TABLE_ARN}/index/*"},
        {"Sid": "Own", "Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": TABLE_ARN,
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    ]  # fmt: skip
    spec = spec_for(settings(tmp_path), plugin=declaring(*fine))
    assert spec.policy["Statement"][5:] == fine
    broad = {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}
    with pytest.raises(PluginError, match=r"deploy\.allow_wildcard_resources"):
        spec_for(settings(tmp_path), plugin=declaring(broad))
    allowed = settings(tmp_path, "[deploy]\nallow_wildcard_resources = true\n")
    assert spec_for(allowed, plugin=declaring(broad)).policy["Statement"][5] == broad
    with pytest.raises(PluginError, match="NotResource"):  # the flag allows no more than that
        spec_for(allowed, plugin=declaring({**broad, "NotResource": "x"}))


def test_iam_statements_must_be_a_list_of_statements(tmp_path: Path) -> None:
    odd = Migration(
        name="odd",
        model=OnboardingRecord,
        key="application_id",
        handler=lambda record, ctx: None,
        iam_statements=lambda o, r, a: GOOD,  # type: ignore[arg-type,return-value]
    )
    with pytest.raises(PluginError, match="odd: iam_statements\\(\\) returned a dict"):
        spec_for(settings(tmp_path), plugin=odd)


def test_environment_round_trips_through_the_config_loader(tmp_path: Path) -> None:
    s = settings(tmp_path, '[aws]\nendpoint_url = "http://127.0.0.1:4566"\n')
    env = environment(s)
    assert all(k.startswith("NORTHMIGRATE_") for k in env)
    again = load_settings(None, env=env)  # what the function reads, with no file
    assert again.migration.options == s.migration.options  # key case, lists, nested kept
    assert again.queue == s.queue.model_copy(update={"dlq_name": "orders-dlq"})
    assert again.migration.plugin == s.migration.plugin
    assert again.aws.endpoint_url == "http://127.0.0.1:4566"
    assert "NORTHMIGRATE_AWS__ENDPOINT_URL" not in environment(settings(tmp_path))


def test_mapping_settings_take_the_tap_limit_over_the_config(tmp_path: Path) -> None:
    spec = spec_for(settings(tmp_path, "[deploy]\nmax_concurrency = 7\nbatch_size = 5\n"))
    assert spec.mapping_settings(None) == {
        "BatchSize": 5,
        "MaximumBatchingWindowInSeconds": 0,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": 7},
    }
    assert spec.mapping_settings(3)["ScalingConfig"] == {"MaximumConcurrency": 3}


def test_the_example_declares_exactly_what_its_handler_calls(mocked_aws: None) -> None:
    """The function's role gets what the handler calls, and nothing more."""
    clients = AwsClients(AwsSettings(region="us-east-1"))
    options = {"table": "target"}
    ctx = MigrationContext(options=options, aws=clients)
    assert migration.setup is not None and migration.iam_statements is not None
    migration.setup(ctx)
    called: set[str] = set()

    def record_call(event_name: str, **kwargs: Any) -> None:
        _, service, operation = event_name.split(".")
        called.add(f"{service}:{operation}")

    clients.client("dynamodb").meta.events.register("before-call", record_call)
    for n in (1, 2, 2):  # a repeat delivery too: the conditional write takes it
        record = migration.model.model_validate(SampleGenerator(seed=n).record(n))
        migration.handler(record, ctx)
    declared = {
        action
        for statement in migration.iam_statements(options, "us-east-1", "123456789012")
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    assert called == declared == {"dynamodb:PutItem"}


def test_a_logging_config_differs_only_in_the_keys_deploy_sets() -> None:
    from northmigrate.deploy.apply import _differs

    wanted = {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"}
    aws = wanted | {"LogGroup": "/aws/lambda/orders-worker"}  # AWS answers with its group
    assert not _differs({"LoggingConfig": aws}, "LoggingConfig", wanted)
    text = aws | {"LogFormat": "Text"}
    assert _differs({"LoggingConfig": text}, "LoggingConfig", wanted)
    assert not _differs({}, "LoggingConfig", wanted)  # an emulator that does not answer it
    assert _differs({"Timeout": 3}, "Timeout", 5) and not _differs({}, "Environment", {})
