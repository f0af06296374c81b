"""Configuration: a TOML file validated with pydantic, with single-key environment overrides.

Lookup order: an explicit path (``--config``), then ``NORTHMIGRATE_CONFIG``, then
``./northmigrate.toml``. ``NORTHMIGRATE_<SECTION>__<KEY>`` overrides one key (nested keys
take more ``__``); its value is read as a TOML value when it parses as one (``5``, ``true``,
``["a"]``) and as a plain string otherwise.

AWS settings follow the AWS CLI's order, one rule for region, profile and endpoint: a flag
(``--region``, ``--profile``, ``--endpoint-url``: the CLI applies them), then AWS's own
environment variables (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL``), then the ``[aws]`` section (the file or ``NORTHMIGRATE_AWS__*``), then
the AWS profile's own settings. ``Settings.aws_origins`` says where each came from.

An error names where the bad value came from: the environment variable, or the file and its
line; an unknown section or key comes with the nearest known name ("did you mean queue?").
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from northmigrate.config_origins import Sources
from northmigrate.errors import ConfigError, plain_words

ENV_PREFIX = "NORTHMIGRATE_"
CONFIG_ENV = "NORTHMIGRATE_CONFIG"
DEFAULT_FILE = "northmigrate.toml"
# Variables with the prefix that are not config keys.
_NOT_KEYS = {CONFIG_ENV, "NORTHMIGRATE_OUTPUT", "NORTHMIGRATE_MINISTACK"}
# AWS's own variables, each key's in the order they win; they beat the [aws] section.
AWS_ENV = {
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "profile": ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"),
    "endpoint_url": ("AWS_ENDPOINT_URL",),
}

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
    # Per-record retry backoff, by the failure's kind (northmigrate.failures): between half
    # and all of base * 2**(attempt-1), at most the kind's max (and, for a retry in place,
    # the queue's visibility timeout). An outage waits with patience (backoff_*); a record
    # error (a bug) reaches the DLQ in seconds (record_backoff_*); a throttled record is not
    # charged a try and comes back after between half and all of throttle_backoff_s.
    backoff_base_s: float = Field(default=30.0, ge=0, le=43_200)
    backoff_max_s: float = Field(default=900.0, ge=0, le=43_200)
    record_backoff_base_s: float = Field(default=1.0, ge=0, le=43_200)
    record_backoff_max_s: float = Field(default=4.0, ge=0, le=43_200)
    throttle_backoff_s: float = Field(default=10.0, ge=0, le=900)
    # Extend the visibility of records still in progress (so a slow one is not run twice).
    heartbeat: bool = True


class GuardSettings(_Section):
    """The circuit breaker (northmigrate.consume.guard): when at least ``failure_share`` of
    the last ``window`` records a consumer tried met an outage (``min_records`` tried at the least),
    it closes the tap for every consumer, with the reason. Record errors close it only with
    ``stop_on_record_errors`` (counting distinct records). ``reopen = "probe"``: every
    ``probe_interval_s`` one record is tried (or the plugin's ``probe``) and the tap opens
    once it succeeds; ``"manual"``: a person runs ``tap open``."""

    enabled: bool = True
    window: int = Field(default=100, ge=10, le=10_000)
    min_records: int = Field(default=20, ge=1, le=10_000)
    failure_share: float = Field(default=0.5, gt=0, le=1)
    stop_on_record_errors: bool = False
    reopen: Literal["probe", "manual"] = "probe"
    probe_interval_s: float = Field(default=30.0, ge=1, le=3_600)
    # Throttling (northmigrate.consume.throttle): the limit changes at most once a step;
    # throttled at the lowest limit for throttle_outage_s is an outage.
    throttle_step_s: float = Field(default=10.0, ge=1, le=3_600)
    throttle_outage_s: float = Field(default=300.0, ge=1, le=86_400)
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
    # Provisioned mode (either key set): the mapping gets ProvisionedPollerConfig instead of
    # ScalingConfig.MaximumConcurrency (AWS takes one or the other); AWS's defaults 2 and 200.
    min_pollers: int | None = Field(default=None, ge=2, le=200)
    max_pollers: int | None = Field(default=None, ge=2, le=10_000)
    arch: Literal["x86_64", "arm64", "host"] = "x86_64"
    runtime: str = Field(default="python3.12", pattern=r"^python3\.\d+$")
    log_retention_days: int = Field(default=30, ge=1, le=3_653)
    requirements: list[str] = Field(default_factory=list)
    bundle_boto3: bool = False
    include: list[str] = Field(default_factory=list)  # plugin data files (globs) to package
    allow_wildcard_resources: bool = False  # plugin statements may name Resource "*"
    # The Step Functions fan-out of ``enqueue s3://... --fan-out N`` (docs/deploy.md): an
    # enqueue function and a state machine, added when ``fan_out`` is true.
    fan_out: bool = False
    fan_out_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    fan_out_sources: list[str] = Field(default_factory=list)  # s3://BUCKET/PREFIX/ it may read
    fan_out_concurrency: int = Field(default=100, ge=1, le=10_000)
    fan_out_timeout_s: int = Field(default=900, ge=30, le=900)
    fan_out_retries: int = Field(default=10, ge=0, le=20)  # a shard's retries in one execution
    fan_out_memory_mb: int = Field(default=1769, ge=128, le=10_240)  # one vCPU

    @property
    def pollers(self) -> tuple[int, int] | None:
        """(minimum, maximum) pollers in provisioned mode; None in on-demand mode."""
        if self.min_pollers is None and self.max_pollers is None:
            return None
        return (self.min_pollers or 2, self.max_pollers or 200)  # AWS's defaults


class Settings(_Section):
    aws: AwsSettings = Field(default_factory=AwsSettings)
    queue: QueueSettings
    migration: MigrationSettings
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    source_path: str | None = Field(default=None, exclude=True)
    # Where each [aws] value came from ("AWS_REGION", "--region", "aws.region in FILE").
    _aws_origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def aws_origins(self) -> dict[str, str]:
        return self._aws_origins

    def with_aws(self, origin: str, **values: str | None) -> Settings:
        """A copy with these [aws] values (the ones not None), each recorded as from
        ``origin``: how the CLI applies its --region, --profile and --endpoint-url flags."""
        given = {key: value for key, value in values.items() if value is not None}
        copy = self.model_copy(update={"aws": self.aws.model_copy(update=given)})
        copy._aws_origins = {**self._aws_origins, **dict.fromkeys(given, origin)}
        return copy


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


def env_value(raw: str) -> Any:
    """An override's value: TOML when it parses as a TOML value, else the text as it is."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Apply the ``NORTHMIGRATE_*`` overrides, then AWS's own variables; return which key
    each variable set."""
    origins: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_KEYS or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name} overrides {'.'.join(path)}, but {part} is not a table")
            node = child
        node[path[-1]] = env_value(raw)
        origins[tuple(path)] = name
    aws = data.get("aws", {})
    for key, names in AWS_ENV.items():
        variable = next((n for n in names if env.get(n)), None)
        if variable is not None and isinstance(aws, dict):
            aws[key] = env[variable]
            data["aws"] = aws
            origins[("aws", key)] = variable
    return origins


_SECTIONS = ("aws", "queue", "migration", "worker", "guard", "deploy")


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    """The keys the model knows at ``loc`` (a section's keys; the sections at ())."""
    if not loc:
        return list(_SECTIONS)
    field = Settings.model_fields.get(loc[0])
    model = field.annotation if field is not None and len(loc) == 1 else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _suggestion(loc: tuple[str, ...]) -> str | None:
    near = difflib.get_close_matches(loc[-1].lower(), _fields_at(loc[:-1]), n=1, cutoff=0.6)
    if not near:
        return None
    return f"did you mean [{near[0]}]?" if len(loc) == 1 else f"did you mean {near[0]}?"


def _with(where: str) -> str:
    return f" {where}" if where.startswith("in ") else f", {where}" if where else ""


def _check_sections(data: dict[str, Any], sources: Sources) -> None:
    """An unknown top-level name is flagged before the model would report a missing
    section: ``[queeu]`` is a typo of ``[queue]``, not a missing queue."""
    for name, value in data.items():
        if name not in _SECTIONS:
            label = f"section [{name}]" if isinstance(value, dict) else f"key {name}"
            where = _with(sources.of((name,)))
            raise ConfigError(f"unknown {label}{where}", hint=_suggestion((name,)))


def _check_pollers(deploy: DeploySettings, sources: Sources) -> None:
    """Provisioned mode's keys agree with each other and stand alone."""
    low, high = deploy.pollers or (0, 0)
    if high and "max_concurrency" in deploy.model_fields_set and deploy.max_concurrency:
        where = _with(sources.of(("deploy", "max_concurrency")))
        raise ConfigError(
            f"invalid value for deploy.max_concurrency{where}: provisioned mode (deploy."
            "min_pollers, deploy.max_pollers) cannot be combined with it",
            hint="remove it (AWS takes a maximum concurrency or pollers, not both); limit "
            "through deploy.max_pollers",
        )
    if low > high:
        where = _with(sources.of(("deploy", "min_pollers")))
        raise ConfigError(f"invalid value for deploy.min_pollers{where}: more than max_pollers")


def _describe(error: ValidationError, sources: Sources) -> ConfigError:
    first = error.errors(include_url=False, include_input=False)[0]
    loc = tuple(str(part) for part in first["loc"])
    key = ".".join(loc)
    where = _with(sources.of(loc))
    if first["type"] == "missing":
        return ConfigError(f"missing required key {key}{where}")
    if first["type"] == "extra_forbidden":
        return ConfigError(f"unknown key {key}{where}", hint=_suggestion(loc))
    return ConfigError(f"invalid value for {key}{where}: {plain_words(first['msg'])}")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration. Raises ConfigError (exit 2)."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    data: dict[str, Any] = {}
    text = ""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    sources = Sources(file, text, _apply_env(data, env))
    if file is None and not data.keys() - {"aws"}:
        raise ConfigError(
            "no configuration found",
            hint=f"run northmigrate init to write ./{DEFAULT_FILE}, pass --config PATH, "
            f"or set {CONFIG_ENV}",
        )
    _check_sections(data, sources)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, sources) from exc
    _check_pollers(settings.deploy, sources)
    if settings.queue.fifo != settings.queue.dead_letter_name.endswith(FIFO_SUFFIX):
        raise ConfigError(
            "invalid value for queue.dlq_name: a FIFO queue needs a FIFO DLQ (name ending .fifo)"
            " and a standard queue a standard DLQ"
        )
    settings = settings.model_copy(update={"source_path": str(file) if file else None})
    settings._aws_origins = sources.aws_origins(AwsSettings.model_fields)
    return settings
