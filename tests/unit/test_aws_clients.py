"""``AwsClients``: the service models each process reads once, and sessions that stay apart."""

from __future__ import annotations

from pathlib import Path

import botocore.exceptions
import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings


def test_two_sessions_read_the_service_models_once_and_keep_their_own_settings() -> None:
    east = AwsClients(AwsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:1"))
    west = AwsClients(AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:2"))
    east_sqs, west_sqs = east.client("sqs"), west.client("sqs")
    assert east.session is not west.session
    assert east_sqs._loader is west_sqs._loader  # type: ignore[attr-defined]
    assert east_sqs.meta.region_name == "us-east-1" and west_sqs.meta.region_name == "eu-west-1"
    assert east_sqs.meta.endpoint_url == "http://127.0.0.1:1"
    assert west_sqs.meta.endpoint_url == "http://127.0.0.1:2"
    assert east_sqs.meta.events is not west_sqs.meta.events  # handlers stay per session


def test_a_session_with_other_model_paths_gets_a_loader_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usual = AwsClients(AwsSettings(region="us-east-1")).client("sqs")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    other = AwsClients(AwsSettings(region="us-east-1")).client("sqs")
    assert other._loader is not usual._loader  # type: ignore[attr-defined]
    assert str(tmp_path) in other._loader.search_paths  # type: ignore[attr-defined]
    assert str(tmp_path) not in usual._loader.search_paths  # type: ignore[attr-defined]


def test_sqs_parameters_are_checked_by_sqs_and_other_services_by_botocore(
    mocked_aws: None,
) -> None:
    clients = AwsClients(AwsSettings(region="us-east-1"))
    sqs, dynamodb = clients.client("sqs"), clients.client("dynamodb")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    with pytest.raises(botocore.exceptions.ClientError):  # refused by SQS on arrival
        sqs.send_message_batch(QueueUrl=url)  # type: ignore[call-arg]
    with pytest.raises(botocore.exceptions.ParamValidationError):  # refused before sending
        dynamodb.get_item(TableName="t")  # type: ignore[call-arg]
