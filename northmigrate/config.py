"""Configuration: a TOML file validated with pydantic, with single-key environment overrides.

Lookup order: an explicit path (``--config``), then ``NORTHMIGRATE_CONFIG``, then
``./northmigrate.toml``. ``NORTHMIGRATE_<SECTION>__<KEY>`` overrides one key (nested keys
take more ``__``); its value is read as a TOML value when it parses as one (``5``, ``true``,
``["a"]``) and as a plain string otherwise.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from northmigrate.errors import ConfigError

ENV_PREFIX = "NORTHMIGRATE_"
CONFIG_ENV = "NORTHMIGRATE_CONFIG"
DEFAULT_FILE = "northmigrate.toml"
# Variables with the prefix that are not config keys.
_NOT_KEYS = {CONFIG_ENV, "NORTHMIGRATE_OUTPUT", "NORTHMIGRATE_MINISTACK"}

SQS_MAX_MESSAGE_SIZE = 262_144
FIFO_SUFFIX = ".fifo"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsSettings(_Section):
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=8, ge=1, le=20)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)


class QueueSettings(_Section):
    name: str = Field(min_length=1, max_length=80)
    dlq_name: str | None = Field(default=None, min_length=1, max_length=80)
    # Tries of the plugin's handler before the worker dead-letters a record (with its reason).
    max_receive_count: int = Field(default=5, ge=1, le=990)
    # Receives SQS allows beyond that before its redrive policy moves a message by itself
    # (reads that tried nothing: peeks, hand-backs, killed workers, throttled Lambda polls).
    receive_headroom: int = Field(default=10, ge=1, le=500)
    visibility_timeout: int = Field(default=60, ge=0, le=43_200)
    retention_s: int = Field(default=4 * 86_400, ge=60, le=1_209_600)
    dlq_retention_s: int = Field(default=1_209_600, ge=60, le=1_209_600)
    max_message_size: int = Field(default=SQS_MAX_MESSAGE_SIZE, ge=1_024, le=1_048_576)

    @property
    def fifo(self) -> bool:
        return self.name.endswith(FIFO_SUFFIX)

    @property
    def sqs_max_receive_count(self) -> int:
        """The redrive policy's ``maxReceiveCount``: the worker's tries plus the headroom, so
        that the worker always dead-letters first, with the reason (SQS allows 1000)."""
        return min(1000, self.max_receive_count + self.receive_headroom)

    @property
    def dead_letter_name(self) -> str:
        if self.dlq_name:
            return self.dlq_name
        if self.fifo:
            return self.name[: -len(FIFO_SUFFIX)] + "-dlq" + FIFO_SUFFIX
        return self.name + "-dlq"


class MigrationSettings(_Section):
    plugin: str = Field(min_length=3)
    options: dict[str, Any] = Field(default_factory=dict)


class WorkerSettings(_Section):
    concurrency: int = Field(default=8, ge=1, le=512)
    # Long-poll wait of a receive (the worker uses at most 1 s with --until-empty).
    wait_time_s: int = Field(default=20, ge=0, le=20)
    # How long a stopping worker lets the records it started finish.
    grace_period_s: float = Field(default=30.0, ge=0, le=43_200)
    # Per-record retry backoff: between half and all of base * 2**(attempt-1), at most
    # backoff_max_s (and, for a retry in place, the queue's visibility timeout).
    backoff_base_s: float = Field(default=30.0, ge=0, le=43_200)
    backoff_max_s: float = Field(default=900.0, ge=0, le=43_200)
    # Extend the visibility of records still in progress (so a slow one is not run twice).
    heartbeat: bool = True


class GuardSettings(_Section):
    """The circuit breaker (northmigrate.guard): when at least ``failure_share`` of the last
    ``window`` records a consumer tried failed in the handler (``min_records`` tried at the
    least), it closes the tap for every consumer, with the reason."""

    enabled: bool = True
    window: int = Field(default=100, ge=10, le=10_000)
    min_records: int = Field(default=20, ge=1, le=10_000)
    failure_share: float = Field(default=0.5, gt=0, le=1)
    # The function's own event source mapping, which its guard disables (deploy sets it in
    # the function's environment; a local worker has none).
    mapping_uuid: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{36}$")


class DeploySettings(_Section):
    """The worker on Lambda (``deploy``); every key optional.

    ``function_name`` defaults to ``<queue name>-worker``, ``role_name`` to
    ``<function name>-role``, ``timeout_s`` to a sixth of the queue's visibility timeout.
    """

    function_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    role_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9+=,.@_-]{1,64}$")
    memory_mb: int = Field(default=256, ge=128, le=10_240)
    timeout_s: int | None = Field(default=None, ge=1, le=900)
    batch_size: int = Field(default=10, ge=1, le=10_000)
    batching_window_s: int = Field(default=0, ge=0, le=300)
    max_concurrency: int | None = Field(default=10, ge=2, le=1_000)
    arch: Literal["x86_64", "arm64", "host"] = "x86_64"
    runtime: str = Field(default="python3.12", pattern=r"^python3\.\d+$")
    log_retention_days: int = Field(default=30, ge=1, le=3_653)
    requirements: list[str] = Field(default_factory=list)
    bundle_boto3: bool = False
    include: list[str] = Field(default_factory=list)  # plugin data files (globs) to package
    allow_wildcard_resources: bool = False  # plugin statements may name Resource "*"


class Settings(_Section):
    aws: AwsSettings = Field(default_factory=AwsSettings)
    queue: QueueSettings
    migration: MigrationSettings
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    source_path: str | None = Field(default=None, exclude=True)


def find_config_file(explicit: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read, by the lookup order, or None when there is none."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", hint="check --config")
        return path
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"config file {path} (from {CONFIG_ENV}) does not exist")
        return path
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_KEYS or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name} overrides {'.'.join(path)}, but {part} is not a table")
            node = child
        node[path[-1]] = _env_value(raw)


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    key = _dotted(first["loc"])
    kind = first["type"]
    if kind == "missing":
        return f"missing required key {key}"
    if kind == "extra_forbidden":
        return f"unknown key {key}"
    return f"invalid value for {key}: {first['msg']}"


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration. Raises ConfigError (exit 2)."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    _apply_env(data, env)
    if file is None and not data:
        raise ConfigError(
            "no configuration found",
            hint=f"pass --config PATH, set {CONFIG_ENV}, or create ./{DEFAULT_FILE} "
            "(config/local.toml is a starting point)",
        )
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        where = f" in {file}" if file else ""
        raise ConfigError(f"{_describe(exc)}{where}") from exc
    if settings.queue.fifo != settings.queue.dead_letter_name.endswith(FIFO_SUFFIX):
        raise ConfigError(
            "invalid value for queue.dlq_name: a FIFO queue needs a FIFO DLQ (name ending .fifo)"
            " and a standard queue a standard DLQ"
        )
    return settings.model_copy(update={"source_path": str(file) if file else None})
