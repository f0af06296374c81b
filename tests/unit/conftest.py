from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import aws_client
from moto import mock_aws


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto, with fake credentials and no endpoint override."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def sqs(mocked_aws: None) -> Any:
    """An SQS client on in-process moto."""
    return aws_client("sqs", region_name="us-east-1")
