"""The function's IAM role (trusted by Lambda, one inline policy) and its log group, made
or brought in line with the spec; each change is noted (a dry run only notes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from northmigrate.aws.clients import aws_errors
from northmigrate.deploy.spec import MANAGED_BY, POLICY_NAME, TRUST_POLICY, StackSpec

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_logs import CloudWatchLogsClient

Note = Callable[[str, str, bool, list[str]], bool]  # (resource, name, created, changed) -> act?


def _document(value: Any) -> Any:
    """A policy document as IAM returns it (URL-encoded text or parsed) -> parsed."""
    if isinstance(value, str):
        return json.loads(unquote(value))
    return value


def _normal(document: Any) -> Any:
    """Order-insensitive form of a policy: single strings and one-item lists compare equal."""
    if isinstance(document, dict):
        return {k: _normal(v) for k, v in sorted(document.items())}
    if isinstance(document, list):
        items = sorted((_normal(v) for v in document), key=lambda v: json.dumps(v, sort_keys=True))
        return items[0] if len(items) == 1 else items
    return document


def same_policy(a: Any, b: Any) -> bool:
    return bool(_normal(_document(a)) == _normal(_document(b)))


def ensure_role(iam: IAMClient, s: StackSpec, note: Note) -> str:
    """The role's ARN, the role made or updated first (unless a dry run)."""
    with aws_errors(f"IAM role {s.role_name}"):
        try:
            role = iam.get_role(RoleName=s.role_name)["Role"]
        except iam.exceptions.NoSuchEntityException:
            if note("role", s.role_name, True, []):
                role = iam.create_role(
                    RoleName=s.role_name,
                    AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                    Description=f"northmigrate worker {s.function_name}",
                    Tags=[{"Key": k, "Value": v} for k, v in MANAGED_BY.items()],
                )["Role"]
                put_policy(iam, s)
                return str(role["Arn"])
            return s.role_arn
        trust_ok = same_policy(role.get("AssumeRolePolicyDocument", {}), TRUST_POLICY)
        try:
            policy = iam.get_role_policy(RoleName=s.role_name, PolicyName=POLICY_NAME)
            policy_ok = same_policy(policy["PolicyDocument"], s.policy)
        except iam.exceptions.NoSuchEntityException:
            policy_ok = False
        changed = ([] if trust_ok else ["AssumeRolePolicyDocument"]) + (
            [] if policy_ok else [f"policy {POLICY_NAME}"]
        )
        if note("role", s.role_name, False, changed):
            if not trust_ok:
                iam.update_assume_role_policy(
                    RoleName=s.role_name, PolicyDocument=json.dumps(TRUST_POLICY)
                )
            if not policy_ok:
                put_policy(iam, s)
        return str(role["Arn"])


def put_policy(iam: IAMClient, s: StackSpec) -> None:
    iam.put_role_policy(
        RoleName=s.role_name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(s.policy)
    )


def ensure_log_group(logs: CloudWatchLogsClient, s: StackSpec, note: Note) -> None:
    with aws_errors(f"log group {s.log_group}"):
        groups = logs.describe_log_groups(logGroupNamePrefix=s.log_group).get("logGroups", [])
        current = next((g for g in groups if g.get("logGroupName") == s.log_group), None)
        if current is None:
            if note("log_group", s.log_group, True, []):
                logs.create_log_group(logGroupName=s.log_group, tags=MANAGED_BY)
                logs.put_retention_policy(
                    logGroupName=s.log_group, retentionInDays=s.log_retention_days
                )
            return
        changed = (
            ["retentionInDays"] if current.get("retentionInDays") != s.log_retention_days else []
        )
        if note("log_group", s.log_group, False, changed):
            logs.put_retention_policy(
                logGroupName=s.log_group, retentionInDays=s.log_retention_days
            )
