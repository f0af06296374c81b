"""deploy waits for the function with boto3's waiters: what each outcome becomes (no network:
the Lambda client's answers are stubbed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from helpers import aws_client

from northmigrate.deploy import apply
from northmigrate.deploy.apply import wait_function
from northmigrate.errors import AwsError

NAME = "northmigrate-orders"


@pytest.fixture
def lam() -> Iterator[tuple[Any, Stubber]]:
    client = aws_client(
        "lambda",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
    stubber.assert_no_pending_responses()


def configuration(**fields: str) -> dict[str, Any]:
    return {"Configuration": {"FunctionName": NAME, **fields}}


def test_a_new_function_is_waited_for_until_active(lam: tuple[Any, Stubber]) -> None:
    client, stubber = lam
    stubber.add_response("get_function", configuration(State="Active"), {"FunctionName": NAME})
    wait_function(client, NAME, "function_active_v2")


def test_an_update_is_waited_for_until_successful(lam: tuple[Any, Stubber]) -> None:
    client, stubber = lam
    stubber.add_response(
        "get_function", configuration(State="Active", LastUpdateStatus="Successful")
    )
    wait_function(client, NAME)


@pytest.mark.parametrize(
    ("waiter", "fields", "reason"),
    [
        ("function_active_v2", {"State": "Failed", "StateReason": "bad zip"}, "bad zip"),
        (
            "function_updated_v2",
            {"LastUpdateStatus": "Failed", "LastUpdateStatusReason": "no memory"},
            "no memory",
        ),
    ],
)
def test_a_failed_function_says_why(
    lam: tuple[Any, Stubber], waiter: Any, fields: dict[str, str], reason: str
) -> None:
    client, stubber = lam
    stubber.add_response("get_function", configuration(**fields))
    with pytest.raises(AwsError) as caught:
        wait_function(client, NAME, waiter)
    assert str(caught.value) == f"function {NAME} failed to update: {reason}"


def test_an_aws_error_while_waiting_is_translated(lam: tuple[Any, Stubber]) -> None:
    client, stubber = lam
    stubber.add_client_error("get_function", "AccessDeniedException", "not allowed")
    with pytest.raises(AwsError) as caught:
        wait_function(client, NAME)
    assert str(caught.value) == (
        f"function {NAME}: access denied (AccessDeniedException) "
        "(check the IAM policy of your credentials)"
    )
    assert caught.value.exit_code == 3


def test_a_function_still_busy_at_the_end_of_the_wait(
    lam: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = lam
    monkeypatch.setattr(apply, "UPDATE_WAIT_S", 1.0)  # one attempt
    stubber.add_response("get_function", configuration(LastUpdateStatus="InProgress"))
    with pytest.raises(AwsError) as caught:
        wait_function(client, NAME)
    assert str(caught.value) == f"function {NAME} is still updating after 1 s"
