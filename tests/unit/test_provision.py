from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.config import load_settings
from northmigrate.control.provision import provision
from northmigrate.errors import PluginError
from northmigrate.examples.onboarding import migration


def settings_for(tmp_path: Path, name: str = "orders", receive: int = 4) -> object:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[queue]\nname = "{name}"\nmax_receive_count = {receive}\nvisibility_timeout = 45\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
        '[migration.options]\ntable = "target"\n'
    )
    return load_settings(path, env={})


def test_provision_creates_then_changes_nothing_then_updates(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients = AwsClients()
    first = provision(clients, settings_for(tmp_path), migration)  # type: ignore[arg-type]
    assert [(c.resource, c.action) for c in first.changes] == [
        ("queue", "created"),
        ("dlq", "created"),
        ("table", "created"),
    ]
    sqs = clients.client("sqs")
    main = sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=first.dlq_url, AttributeNames=["All"])["Attributes"]
    # SQS's own limit leaves headroom above the worker's 4 tries: reads that tried nothing
    # (peeks, hand-backs, kills) never make SQS dead-letter a record before the worker does.
    assert json.loads(main["RedrivePolicy"]) == {
        "deadLetterTargetArn": first.dlq_arn,
        "maxReceiveCount": 4 + 10,
    }
    # The DLQ takes SQS's largest messages: a dead letter always has room for its reason.
    assert dlq["MaximumMessageSize"] == "1048576"
    assert main["MaximumMessageSize"] == "262144"
    assert main["VisibilityTimeout"] == "45"
    assert main["SqsManagedSseEnabled"] == "true" and dlq["SqsManagedSseEnabled"] == "true"
    assert int(dlq["MessageRetentionPeriod"]) > int(main["MessageRetentionPeriod"])
    policy = json.loads(main["Policy"])["Statement"][0]
    assert policy["Effect"] == "Deny" and policy["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }

    second = provision(clients, settings_for(tmp_path), migration)  # type: ignore[arg-type]
    assert not second.changed
    assert second.queue_url == first.queue_url

    third = provision(clients, settings_for(tmp_path, receive=7), migration)  # type: ignore[arg-type]
    assert (third.changes[0].resource, third.changes[0].action, third.changes[0].changed) == (
        "queue",
        "updated",
        ["RedrivePolicy"],
    )


def test_provision_fifo(mocked_aws: None, tmp_path: Path) -> None:
    report = provision(AwsClients(), settings_for(tmp_path, name="orders.fifo"), None)  # type: ignore[arg-type]
    assert report.queue_url.endswith("orders.fifo") and report.dlq_url.endswith("orders-dlq.fifo")


def test_a_plugin_setup_that_raises_is_one_line_not_a_crash(
    mocked_aws: None, tmp_path: Path
) -> None:
    def broken(ctx: Any) -> Any:
        raise KeyError("table_name")

    plugin = dataclasses.replace(migration, setup=broken)
    with pytest.raises(PluginError, match="setup failed: KeyError") as raised:
        provision(AwsClients(), settings_for(tmp_path), plugin)  # type: ignore[arg-type]
    assert raised.value.exit_code == 2
