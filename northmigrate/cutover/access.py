"""May a function's role consume a queue? Read from the role's own policies.

The role's inline and attached policies are read and their ``Allow`` statements matched
against the actions a consumer needs (``sqs:ReceiveMessage``, ``sqs:DeleteMessage``,
``sqs:ChangeMessageVisibility``, ``sqs:GetQueueAttributes``) on the queue's ARN, and
``kms:Decrypt`` on the queue's KMS key when it has one (not the AWS managed ``alias/aws/sqs``).
Wildcards in actions and resources count. A ``Deny``, a condition, a permission boundary or
a service control policy is not evaluated: the answer is what the role is granted, not a
proof of access. A role that cannot be read gives ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from northmigrate.aws import AWS_EXCEPTIONS

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

CONSUMER_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)
AWS_MANAGED_SQS_KEY = "alias/aws/sqs"


def _document(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(unquote(value))
    return dict(value)


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def role_documents(iam: IAMClient, role_name: str) -> Iterator[dict[str, Any]]:
    """The policy documents of a role: inline, then attached (their default versions)."""
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page.get("PolicyNames", []):
            got = iam.get_role_policy(RoleName=role_name, PolicyName=name)
            yield _document(got["PolicyDocument"])
    pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
    for listed in pages:
        for attached in listed.get("AttachedPolicies", []):
            arn = str(attached.get("PolicyArn", ""))
            version = iam.get_policy(PolicyArn=arn)["Policy"].get("DefaultVersionId", "v1")
            policy = iam.get_policy_version(PolicyArn=arn, VersionId=version)
            yield _document(policy["PolicyVersion"].get("Document", {}))


def _allows(statement: dict[str, Any], action: str, resource: str) -> bool:
    if statement.get("Effect") != "Allow" or "Action" not in statement:
        return False
    actions = _listed(statement.get("Action"))
    resources = _listed(statement.get("Resource", "*"))
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
        fnmatch.fnmatchcase(resource, r) for r in resources
    )


def missing_actions(documents: list[dict[str, Any]], wanted: dict[str, str]) -> list[str]:
    """The actions of ``wanted`` (action -> resource ARN) that no statement allows."""
    statements = [
        dict(s) for doc in documents for s in _listed_statements(doc.get("Statement", []))
    ]
    return [
        action
        for action, resource in wanted.items()
        if not any(_allows(s, action, resource) for s in statements)
    ]


def _listed_statements(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def consumer_wanted(queue_arn: str, kms_key_arn: str | None) -> dict[str, str]:
    """What a consumer of the queue needs: each action with the resource it acts on."""
    wanted = dict.fromkeys(CONSUMER_ACTIONS, queue_arn)
    if kms_key_arn:
        wanted["kms:Decrypt"] = kms_key_arn
    return wanted


def role_missing(iam: IAMClient, role_arn: str, wanted: dict[str, str]) -> list[str] | None:
    """The wanted actions the role is not granted; None when its policies cannot be read."""
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        return missing_actions(list(role_documents(iam, role_name)), wanted)
    except AWS_EXCEPTIONS:
        return None
