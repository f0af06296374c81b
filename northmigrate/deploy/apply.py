"""Make AWS match a ``StackSpec``: the role and its policy, the log group, the function and
the event source mapping. Idempotent: what already matches is left alone, so a second
deploy with nothing changed makes no change. With ``dry_run`` it only reads, and reports
what it would create or update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError, WaiterError

from northmigrate.aws.clients import AwsClients, aws_errors, error_code, translate
from northmigrate.consume.tap import TapState, mappings, read_state, wait_mapping
from northmigrate.control.provision import Change
from northmigrate.deploy.environment import toml_value
from northmigrate.deploy.package import Package
from northmigrate.deploy.role import ensure_log_group, ensure_role
from northmigrate.deploy.schedule import ensure_schedule
from northmigrate.deploy.spec import MANAGED_BY, StackSpec
from northmigrate.errors import AwsError, Refused

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import (
        FunctionConfigurationResponseTypeDef,
        WaiterConfigTypeDef,
    )

_NOT_FOUND = {"NoSuchEntity", "ResourceNotFoundException"}
# IAM is eventually consistent: a new role can take seconds before Lambda may assume it.
GUARD_MAPPING_ENV = "NORTHMIGRATE_GUARD__MAPPING_UUID"
_ROLE_NOT_READY = "cannot be assumed"
ROLE_WAIT_S = 90.0
UPDATE_WAIT_S = 300.0


def _current(mapping: Mapping[str, Any], key: str) -> Any:
    """A mapping's setting as ``mapping_settings`` states it: a batching window of 0 and an
    empty scaling or poller config are what AWS leaves out."""
    value = mapping.get(key)
    if key == "MaximumBatchingWindowInSeconds":
        return value or 0
    if key in ("ScalingConfig", "ProvisionedPollerConfig"):
        return {k: v for k, v in dict(value or {}).items() if v is not None}
    return value or None


def _with_mode(current: Mapping[str, Any], wanted: dict[str, Any], name: str) -> dict[str, Any]:
    """``wanted`` for an existing mapping: going to provisioned mode also clears its maximum
    concurrency (AWS refuses the two together); going back to on-demand is refused."""
    provisioned = _current(current, "ProvisionedPollerConfig")
    if "ProvisionedPollerConfig" in wanted:
        if _current(current, "ScalingConfig"):
            return {**wanted, "ScalingConfig": {}}
        return wanted
    if provisioned:
        raise Refused(
            f"event source mapping {name} is in provisioned mode ({provisioned}); deploy does "
            "not turn that off",
            hint="set deploy.min_pollers/max_pollers to keep it, or turn provisioned mode off "
            "in the Lambda console, then deploy again",
        )
    return wanted


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
    state_machine_arn: str | None = None  # the fan-out's (deploy.fan_out)

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
        } | ({} if self.state_machine_arn is None else {"state_machine": self.state_machine_arn})


def package_contents(package: Package) -> dict[str, Any]:
    """What a package holds, as ``deploy`` reports it: its file count, the files the plugin
    brings (and its distribution, with the dependencies it declares), the pinned
    dependencies and the platform they were built for."""
    return {
        "files": package.files,
        "plugin_files": list(package.plugin_files),
        "plugin_distribution": package.plugin_distribution,
        "plugin_dependencies": list(package.plugin_requirements),
        "dependencies": list(package.requirements),
        "platform": package.platform,
    }


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


def _differs(current: Mapping[str, Any], key: str, wanted: Any) -> bool:
    """Does the function's current setting differ from the wanted one? AWS answers a
    ``LoggingConfig`` with more keys than were set (its log group): only the set ones count,
    and an endpoint that does not answer it at all (an emulator) is taken at its word."""
    if key == "LoggingConfig":
        have = current.get("LoggingConfig")
        return have is not None and any(have.get(k) != v for k, v in dict(wanted).items())
    return bool((current.get(key) or ({} if key == "Environment" else None)) != wanted)


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
        self.clients = clients
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

    # -- role and log group -----------------------------------------------------------------
    def role(self) -> str:
        return ensure_role(self.iam, self.spec, self._note)

    def log_group(self) -> None:
        ensure_log_group(self.logs, self.spec, self._note)

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
            "LoggingConfig": s.logging_config,
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
                    Description=s.description,
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
            changed = [key for key, value in wanted.items() if _differs(current, key, value)]
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
                        # a closed tap stays closed; a cutover decides who reads the queue
                        Enabled=tap.open and tap.cutover is None,
                        **wanted,
                    )
                    return str(created["UUID"])
                return ""
            current = existing[0]
            wanted = _with_mode(current, wanted, name)
            changed = [key for key, value in wanted.items() if _current(current, key) != value]
            uuid = str(current["UUID"])
            if self._note("mapping", name, False, changed):
                wait_mapping(self.lam, uuid, sleep=self.sleep)
                self.lam.update_event_source_mapping(
                    UUID=uuid, **{key: wanted[key] for key in changed}
                )
            return uuid

    def _mapping_uuid(self) -> str:
        """The UUID of the function's mapping of the queue, or "" when there is none yet."""
        if not self._function_exists():
            return ""
        found = mappings(self.lam, self.spec.queue.arn, self.spec.function_name)
        return str(found[0]["UUID"]) if found else ""

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
        guarded = "NORTHMIGRATE_GUARD__ENABLED" in s.environment and (
            s.environment["NORTHMIGRATE_GUARD__ENABLED"] == "true"
        )
        known = self._mapping_uuid() if guarded else ""
        if known:  # the guard disables its own mapping: the function knows which
            self.spec = s = replace(
                s, environment={**s.environment, GUARD_MAPPING_ENV: toml_value(known)}
            )
        function_arn = self.function(role_arn)
        uuid = self.mapping(tap)
        ensure_schedule(self.clients, s, function_arn, self._note)  # the guard's probe
        if guarded and uuid and uuid != known and not self.dry_run:
            self.spec = tell_the_function(self.lam, self.spec, uuid)
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


def tell_the_function(lam: LambdaClient, spec: StackSpec, uuid: str) -> StackSpec:
    """A new mapping: put its UUID in the function's environment (its guard disables that
    mapping, and only that one); the spec as it now is."""
    spec = replace(spec, environment={**spec.environment, GUARD_MAPPING_ENV: toml_value(uuid)})
    with aws_errors(f"function {spec.function_name}"):
        wait_function(lam, spec.function_name)
        lam.update_function_configuration(
            FunctionName=spec.function_name, Environment={"Variables": spec.environment}
        )
        wait_function(lam, spec.function_name)
    return spec
