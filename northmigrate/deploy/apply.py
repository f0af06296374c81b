"""Make AWS match a ``StackSpec``: the role and its policy, the log group, the function and
the event source mapping. Idempotent: what already matches is left alone, so a second
deploy with nothing changed makes no change. With ``dry_run`` it only reads, and reports
what it would create or update.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from botocore.exceptions import ClientError, WaiterError

from northmigrate.aws import AwsClients, aws_errors, error_code, translate
from northmigrate.deploy.package import Package
from northmigrate.deploy.spec import MANAGED_BY, POLICY_NAME, TRUST_POLICY, StackSpec
from northmigrate.errors import AwsError
from northmigrate.provision import Change
from northmigrate.tap import TapState, mappings, read_state, wait_mapping

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import (
        FunctionConfigurationResponseTypeDef,
        WaiterConfigTypeDef,
    )

_NOT_FOUND = {"NoSuchEntity", "ResourceNotFoundException"}
# IAM is eventually consistent: a new role can take seconds before Lambda may assume it.
_ROLE_NOT_READY = "cannot be assumed"
ROLE_WAIT_S = 90.0
UPDATE_WAIT_S = 300.0


@dataclass
class DeployReport:
    function_name: str
    function_arn: str
    role_arn: str
    mapping_uuid: str
    code_sha256: str
    package_size: int
    dry_run: bool
    tap: TapState
    changes: list[Change] = field(default_factory=list)
    package: Package | None = None  # what goes in the function

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "function_name": self.function_name,
            "function_arn": self.function_arn,
            "role_arn": self.role_arn,
            "mapping_uuid": self.mapping_uuid,
            "code_sha256": self.code_sha256,
            "package_size": self.package_size,
            "dry_run": self.dry_run,
            "tap": "open" if self.tap.open else "closed",
            "changed": self.changed,
            "changes": [c.to_dict() for c in self.changes],
            "package": None if self.package is None else package_contents(self.package),
        }


def package_contents(package: Package) -> dict[str, Any]:
    """What a package holds, as ``deploy`` reports it: its file count, the files the plugin
    brings, the pinned dependencies and the platform they were built for."""
    return {
        "files": package.files,
        "plugin_files": list(package.plugin_files),
        "dependencies": list(package.requirements),
        "platform": package.platform,
    }


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


FunctionWaiter = Literal["function_active_v2", "function_updated_v2"]


def wait_function(
    lam: LambdaClient, name: str, waiter: FunctionWaiter = "function_updated_v2"
) -> None:
    """Wait with boto3's waiter until the function is Active (``function_active_v2``, after
    a create) or its last update is done (``function_updated_v2``, before and after an
    update); an AwsError when it failed, or is still busy after ``UPDATE_WAIT_S``."""
    config: WaiterConfigTypeDef = {"Delay": 1, "MaxAttempts": int(UPDATE_WAIT_S)}
    with aws_errors(f"function {name}"):
        try:
            lam.get_waiter(waiter).wait(FunctionName=name, WaiterConfig=config)
        except WaiterError as exc:
            raise _wait_failed(name, exc) from exc


def _wait_failed(name: str, exc: WaiterError) -> AwsError:
    """What a function waiter's error means: the function failed (its reason), an AWS error
    on the way (translated as any other), or still busy at the end of the wait."""
    if "Error" in exc.last_response:
        return translate(ClientError(exc.last_response, "GetFunction"), f"function {name}")
    response: Mapping[str, Any] = exc.last_response  # GetFunction's
    conf = response.get("Configuration") or {}
    if conf.get("LastUpdateStatus") == "Failed" or conf.get("State") == "Failed":
        reason = conf.get("LastUpdateStatusReason") or conf.get("StateReason") or ""
        return AwsError(f"function {name} failed to update: {reason}")
    return AwsError(f"function {name} is still updating after {UPDATE_WAIT_S:.0f} s")


class Deployer:
    """Applies (or plans) one stack. ``sleep`` (between retries while a new role cannot be
    assumed yet, and while a mapping settles) is injectable for tests."""

    def __init__(
        self,
        clients: AwsClients,
        spec: StackSpec,
        package: Package,
        *,
        dry_run: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.package = package
        self.dry_run = dry_run
        self.sleep = sleep
        self.iam = clients.client("iam")
        self.lam = clients.client("lambda")
        self.logs = clients.client("logs")
        self.sqs = clients.client("sqs")
        self.changes: list[Change] = []

    # -- bookkeeping ------------------------------------------------------------------------
    def _note(self, resource: str, name: str, created: bool, changed: list[str]) -> bool:
        """Record a change; True when the caller should make it (not a dry run)."""
        if created:
            action = "create" if self.dry_run else "created"
        elif changed:
            action = "update" if self.dry_run else "updated"
        else:
            action = "unchanged"
        self.changes.append(Change(resource, name, action, sorted(changed)))
        return not self.dry_run and (created or bool(changed))

    # -- role -------------------------------------------------------------------------------
    def role(self) -> str:
        s = self.spec
        with aws_errors(f"IAM role {s.role_name}"):
            try:
                role = self.iam.get_role(RoleName=s.role_name)["Role"]
            except self.iam.exceptions.NoSuchEntityException:
                if self._note("role", s.role_name, True, []):
                    role = self.iam.create_role(
                        RoleName=s.role_name,
                        AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                        Description=f"northmigrate worker {s.function_name}",
                        Tags=[{"Key": k, "Value": v} for k, v in MANAGED_BY.items()],
                    )["Role"]
                    self._put_policy()
                    return str(role["Arn"])
                return s.role_arn
            trust_ok = same_policy(role.get("AssumeRolePolicyDocument", {}), TRUST_POLICY)
            try:
                policy = self.iam.get_role_policy(RoleName=s.role_name, PolicyName=POLICY_NAME)
                policy_ok = same_policy(policy["PolicyDocument"], s.policy)
            except self.iam.exceptions.NoSuchEntityException:
                policy_ok = False
            changed = ([] if trust_ok else ["AssumeRolePolicyDocument"]) + (
                [] if policy_ok else [f"policy {POLICY_NAME}"]
            )
            if self._note("role", s.role_name, False, changed):
                if not trust_ok:
                    self.iam.update_assume_role_policy(
                        RoleName=s.role_name, PolicyDocument=json.dumps(TRUST_POLICY)
                    )
                if not policy_ok:
                    self._put_policy()
            return str(role["Arn"])

    def _put_policy(self) -> None:
        self.iam.put_role_policy(
            RoleName=self.spec.role_name,
            PolicyName=POLICY_NAME,
            PolicyDocument=json.dumps(self.spec.policy),
        )

    # -- log group ------------------------------------------------------------------------
    def log_group(self) -> None:
        s = self.spec
        with aws_errors(f"log group {s.log_group}"):
            groups = self.logs.describe_log_groups(logGroupNamePrefix=s.log_group).get(
                "logGroups", []
            )
            current = next((g for g in groups if g.get("logGroupName") == s.log_group), None)
            if current is None:
                if self._note("log_group", s.log_group, True, []):
                    self.logs.create_log_group(logGroupName=s.log_group, tags=MANAGED_BY)
                    self.logs.put_retention_policy(
                        logGroupName=s.log_group, retentionInDays=s.log_retention_days
                    )
                return
            changed = (
                ["retentionInDays"]
                if current.get("retentionInDays") != s.log_retention_days
                else []
            )
            if self._note("log_group", s.log_group, False, changed):
                self.logs.put_retention_policy(
                    logGroupName=s.log_group, retentionInDays=s.log_retention_days
                )

    # -- function -------------------------------------------------------------------------
    def _wait_function(self, waiter: FunctionWaiter = "function_updated_v2") -> None:
        wait_function(self.lam, self.spec.function_name, waiter)

    def _configuration(self, role_arn: str) -> dict[str, Any]:
        s = self.spec
        return {
            "Runtime": s.runtime,
            "Role": role_arn,
            "Handler": s.handler,
            "Timeout": s.timeout_s,
            "MemorySize": s.memory_mb,
            "Environment": {"Variables": s.environment},
        }

    def _create_function(self, role_arn: str) -> FunctionConfigurationResponseTypeDef:
        s = self.spec
        waited = 0.0
        while True:
            try:
                return self.lam.create_function(
                    FunctionName=s.function_name,
                    Code={"ZipFile": self.package.read()},
                    Architectures=[s.architecture],
                    Description="northmigrate worker: migrates one SQS record at a time",
                    Tags=MANAGED_BY,
                    **self._configuration(role_arn),
                )
            except self.lam.exceptions.InvalidParameterValueException as exc:
                if _ROLE_NOT_READY not in str(exc) or waited >= ROLE_WAIT_S:
                    raise
                self.sleep(3.0)
                waited += 3.0

    def function(self, role_arn: str) -> str:
        s = self.spec
        with aws_errors(f"function {s.function_name}"):
            try:
                current = self.lam.get_function(FunctionName=s.function_name)["Configuration"]
            except self.lam.exceptions.ResourceNotFoundException:
                current = None
            if current is None:
                if self._note("function", s.function_name, True, []):
                    arn = str(self._create_function(role_arn)["FunctionArn"])
                    self._wait_function("function_active_v2")
                    return arn
                q = s.queue
                return f"arn:{q.partition}:lambda:{q.region}:{q.account}:function:{s.function_name}"
            wanted = self._configuration(role_arn)
            changed = [
                key
                for key, value in wanted.items()
                if (current.get(key) or ({} if key == "Environment" else None)) != value
            ]
            code_changed = current.get("CodeSha256") != self.package.sha256
            arch_changed = (current.get("Architectures") or ["x86_64"]) != [s.architecture]
            fields = (
                changed
                + (["Code"] if code_changed else [])
                + (["Architectures"] if arch_changed else [])
            )
            if self._note("function", s.function_name, False, fields):
                if changed:
                    self._wait_function()
                    self.lam.update_function_configuration(FunctionName=s.function_name, **wanted)
                if code_changed or arch_changed:
                    self._wait_function()
                    self.lam.update_function_code(
                        FunctionName=s.function_name,
                        ZipFile=self.package.read(),
                        Architectures=[s.architecture],
                    )
                self._wait_function()
            return str(current["FunctionArn"])

    # -- event source mapping -------------------------------------------------------------
    def mapping(self, tap: TapState) -> str:
        s = self.spec
        wanted = s.mapping_settings(tap.limit)
        name = f"{s.queue.name} -> {s.function_name}"
        existing = (
            mappings(self.lam, s.queue.arn, s.function_name) if self._function_exists() else []
        )
        with aws_errors(f"event source mapping {name}"):
            if not existing:
                if self._note("mapping", name, True, []):
                    created = self.lam.create_event_source_mapping(
                        EventSourceArn=s.queue.arn,
                        FunctionName=s.function_name,
                        Enabled=tap.open,  # a closed tap stays closed
                        **wanted,
                    )
                    return str(created["UUID"])
                return ""
            current = existing[0]
            changed = [
                key
                for key, value in wanted.items()
                if (current.get(key) or (0 if key == "MaximumBatchingWindowInSeconds" else None))
                != value
            ]
            uuid = str(current["UUID"])
            if self._note("mapping", name, False, changed):
                wait_mapping(self.lam, uuid, sleep=self.sleep)
                self.lam.update_event_source_mapping(
                    UUID=uuid, **{key: wanted[key] for key in changed}
                )
            return uuid

    def _function_exists(self) -> bool:
        try:
            self.lam.get_function_configuration(FunctionName=self.spec.function_name)
            return True
        except self.lam.exceptions.ResourceNotFoundException:
            return False
        except Exception as exc:
            if error_code(exc) in _NOT_FOUND:
                return False
            raise

    def run(self) -> DeployReport:
        s = self.spec
        with aws_errors(f"tags of queue {s.queue.name}"):
            url = self.sqs.get_queue_url(QueueName=s.queue.name)["QueueUrl"]
        tap = read_state(self.sqs, url)
        role_arn = self.role()
        self.log_group()
        function_arn = self.function(role_arn)
        uuid = self.mapping(tap)
        return DeployReport(
            function_name=s.function_name,
            function_arn=function_arn,
            role_arn=role_arn,
            mapping_uuid=uuid,
            code_sha256=self.package.sha256,
            package_size=self.package.size,
            dry_run=self.dry_run,
            tap=tap,
            changes=self.changes,
            package=self.package,
        )
