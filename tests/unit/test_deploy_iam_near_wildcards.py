"""The IAM check against statements that grant more than they name without saying ``*``:
a pattern where a resource's name is expected, a pattern in the account or the service, and
IAM writes (a function that may change IAM may grant itself anything)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.deploy.iam import plugin_statements
from northmigrate.errors import PluginError

PREFIX = "arn:aws:{service}:eu-west-1:111122223333:"
# (service, resource part): {name} is where a name is expected, {below} what lies under it.
SHAPES = [
    ("dynamodb", "table/{name}"),
    ("dynamodb", "table/{name}/index/{below}"),
    ("dynamodb", "table/{name}/stream/{below}"),
    ("s3", "{name}/{below}"),
    ("s3", "{name}"),
    ("secretsmanager", "secret:{name}"),
    ("sqs", "{name}"),
    ("sns", "{name}"),
    ("lambda", "function:{name}"),
    ("lambda", "function:{name}:{below}"),
    ("logs", "log-group:/aws/lambda/{name}:{below}"),
    ("logs", "log-group:{name}"),
    ("kms", "key/{name}"),
    ("ssm", "parameter/{name}/{below}"),
    ("kinesis", "stream/{name}"),
    ("events", "event-bus/{name}"),
]
ACTION = {
    "dynamodb": "dynamodb:PutItem",
    "s3": "s3:GetObject",
    "secretsmanager": "secretsmanager:GetSecretValue",
    "sqs": "sqs:SendMessage",
    "sns": "sns:Publish",
    "lambda": "lambda:InvokeFunction",
    "logs": "logs:PutLogEvents",
    "kms": "kms:Decrypt",
    "ssm": "ssm:GetParameter",
    "kinesis": "kinesis:PutRecord",
    "events": "events:PutEvents",
}
names = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
patterns = st.sampled_from(["*", "?", "**", "*?"])
below = st.sampled_from(["*", "?*", "part/*", "*.csv", "x?y", "fixed"])


def statement(arn: str, action: str, effect: str = "Allow") -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": arn}


def check(*statements: dict[str, Any], allow: bool = False) -> list[dict[str, Any]]:
    return plugin_statements("greedy", list(statements), allow_wildcard_resources=allow)


@st.composite
def near_wildcards(draw: st.DrawFn) -> tuple[str, str]:
    """An ARN with a pattern somewhere in the name of its resource."""
    service, shape = draw(st.sampled_from(SHAPES))
    name = draw(names)
    at = draw(st.integers(0, len(name)))
    name = name[:at] + draw(patterns) + name[at + draw(st.integers(0, 1)) :]
    arn = PREFIX.format(service=service) + shape.format(name=name, below=draw(below))
    return arn, ACTION[service]


@given(near_wildcards())
@settings(max_examples=300, deadline=None)
def test_any_pattern_where_a_name_is_expected_is_refused(case: tuple[str, str]) -> None:
    arn, action = case
    with pytest.raises(PluginError, match="wildcard resource") as caught:
        check(statement(arn, action))
    assert caught.value.exit_code == 2
    assert check(statement(arn, action), allow=True)  # the config's explicit opt-in
    assert check(statement(arn, action, "Deny"))  # a Deny narrows, whatever it names


@given(st.sampled_from(SHAPES), names, below)
@settings(max_examples=200, deadline=None)
def test_a_pattern_below_a_named_resource_passes(
    shape: tuple[str, str], name: str, under: str
) -> None:
    service, part = shape
    arn = PREFIX.format(service=service) + part.format(name=name, below=under)
    assert check(statement(arn, ACTION[service])) == [statement(arn, ACTION[service])]


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:dynamodb:eu-west-1:111122223333:table/*/index/*",
        "arn:aws:s3:::*/*.csv",
        "arn:aws:s3:::data-*/*",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:p*",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:*-??????",
        "arn:aws:dynamodb:eu-west-1:*:table/orders",
        "arn:aws:dynamodb:eu-west-1:1111222233?3:table/orders",
        "arn:aws:*:eu-west-1:111122223333:table/orders",
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/*",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/",
    ],
)
def test_the_reported_near_wildcards_are_refused(arn: str) -> None:
    with pytest.raises(PluginError, match=f"wildcard resource '{re.escape(arn)}'"):
        check(statement(arn, "dynamodb:GetItem"))


def test_a_secrets_random_suffix_is_a_name() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-??????"
    assert check(statement(arn, "secretsmanager:GetSecretValue"))


ROLE = "arn:aws:iam::111122223333:role/orders-worker-role"
IAM_WRITES = [
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
    "iam:CreatePolicyVersion",
    "iam:CreateAccessKey",
    "iam:DeleteRolePermissionsBoundary",
    "iam:TagRole",
    "iam:putrolepolicy",
]


@pytest.mark.parametrize("action", IAM_WRITES)
@pytest.mark.parametrize("allow", [False, True])
def test_an_iam_write_is_refused_even_on_the_workers_own_role(action: str, allow: bool) -> None:
    with pytest.raises(PluginError, match="changes IAM") as caught:
        check(statement(ROLE, action), allow=allow)
    assert "iam_statements()[0]" in str(caught.value)
    assert check(statement(ROLE, action, "Deny"))  # denying it is fine


@pytest.mark.parametrize("action", ["iam:*", "iam:Put*", "iam:?utRolePolicy"])
def test_an_iam_wildcard_action_is_refused(action: str) -> None:
    with pytest.raises(PluginError, match="wildcard action"):
        check(statement(ROLE, action))


def test_iam_reads_of_a_named_role_pass() -> None:
    assert check(statement(ROLE, "iam:GetRole"), statement(ROLE, "iam:ListRoleTags"))
