"""The one place AWS clients come from, and the one place AWS errors are translated.

``AwsClients`` honours region, profile and endpoint (as ``config.load_settings`` resolved
them: flag, then AWS's environment, then the config; else the standard AWS chain),
botocore's ``standard``/``adaptive`` retry modes, and a connection pool sized to the work's
concurrency. Against a loopback endpoint (the config's, ``AWS_ENDPOINT_URL``, or the AWS
profile's), with no credentials configured, it uses dummy ones: emulators accept any. It
makes one client per service and process; boto3 clients are thread-safe, sessions are not,
so the session is only touched under a lock.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit, urlunsplit

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

from northmigrate.config import AwsSettings
from northmigrate.errors import AwsError, ConfigError

if TYPE_CHECKING:  # boto3-stubs: for the type checker only (never on Lambda)
    from botocore.client import BaseClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

# Credentials used against a loopback endpoint when none are configured: local emulators
# accept any, and a fresh machine has none.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEFAULT_REGION = "us-east-1"
# Hosts of AWS's own endpoints: a client's endpoint there is not a configured one.
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


# Names that stand for this machine (RFC 6761's .localhost, and Debian's IPv6 aliases).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host stands for, in every spelling the resolver takes: IPv6
    (scoped too), dotted quads and their short, decimal, hex and octal forms (``127.1``,
    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``), a trailing dot; None for a name."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host:
        return None
    try:  # inet_aton reads the forms getaddrinfo reads for a numeric IPv4 host
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _this_machine(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1
            return _this_machine(address.ipv4_mapped)
        if address.packed[:12] == bytes(12) and int(address) > 1:  # ::127.0.0.1 (compatible)
            return _this_machine(ipaddress.IPv4Address(address.packed[12:]))
    return address.is_loopback or address.is_unspecified


def is_loopback(url: str | None) -> bool:
    """Does ``url`` point at this machine: localhost (any case, a trailing dot, a
    ``.localhost`` name), 127.0.0.0/8, ::1, 0.0.0.0 or ::, in any spelling of the address
    (see ``host_address``; IPv4-mapped IPv6 too)? No name is looked up."""
    if not url:
        return False
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:  # a malformed IPv6 literal
        return False
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    address = host_address(host)
    return address is not None and _this_machine(address)


def has_credentials(url: str | None) -> bool:
    """Does ``url`` carry a user name or a password (``http://user:pass@host``)?"""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return "@" in parts.netloc or parts.username is not None


def shown_url(url: str | None) -> str:
    """``url`` for a message or an output: its user name and password, if any, as ``***``."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***" if "@" in url else url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


class AwsClients:
    """A factory of boto3 clients that share one session, one config and one pool size."""

    def __init__(
        self,
        settings: AwsSettings | None = None,
        *,
        pool_size: int = 10,
        session: boto3.session.Session | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings or AwsSettings()
        # Where each setting came from ("AWS_PROFILE", "--profile"), for error messages.
        self.origins = dict(origins or {})
        self.pool_size = max(10, pool_size)
        self._session = session
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> boto3.session.Session:
        with self._lock:
            return self._session_locked()

    def _session_locked(self) -> boto3.session.Session:
        if self._session is None:
            core = botocore.session.get_session()  # what boto3 makes when given none
            try:
                self._session = boto3.session.Session(
                    botocore_session=core,
                    profile_name=self.settings.profile,
                    region_name=self.settings.region,
                )
                share_service_models(core)
            except botocore.exceptions.ProfileNotFound as exc:
                raise ConfigError(self._missing_profile()) from exc
        return self._session

    def _missing_profile(self) -> str:
        name = self.settings.profile
        origin = self.origins.get("profile")
        if name is None:  # boto3 read it from the environment itself
            origin = next((n for n in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE") if os.getenv(n)), "")
            name = os.environ.get(origin) if origin else None
        files = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
        credentials = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
        source = f" (set by {origin})" if origin else ""
        return (
            f"AWS profile {name!r}{source} is not in {files} or {credentials} "
            "(aws configure --profile NAME creates one)"
        )

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint in use when it is not AWS's own: the config's, else the one botocore
        configures (``AWS_ENDPOINT_URL``, the AWS profile's ``endpoint_url``)."""
        if self.settings.endpoint_url:
            return self.settings.endpoint_url
        return configured_endpoint(self.client("sts"))

    @property
    def region(self) -> str:
        return self.session.region_name or DEFAULT_REGION

    # The client's type follows the service's name, as boto3-stubs types ``boto3.client``; any
    # other service is a plain botocore client.
    @overload
    def client(self, service: Literal["cloudwatch"]) -> CloudWatchClient: ...
    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["iam"]) -> IAMClient: ...
    @overload
    def client(self, service: Literal["lambda"]) -> LambdaClient: ...
    @overload
    def client(self, service: Literal["logs"]) -> CloudWatchLogsClient: ...
    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["sns"]) -> SNSClient: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sts"]) -> STSClient: ...
    @overload
    def client(self, service: str) -> BaseClient: ...
    def client(self, service: str) -> Any:
        """The process-wide client for ``service`` (created on first use)."""
        with self._lock:
            existing = self._clients.get(service)
            if existing is not None:
                return existing
            session = self._session_locked()
            kwargs: dict[str, Any] = {"config": self._config_locked(session, service)}
            if self.settings.endpoint_url:
                kwargs["endpoint_url"] = self.settings.endpoint_url
            created = session.client(service, **kwargs)  # type: ignore[call-overload]
            # The endpoint the client resolved (botocore's public view of it: the config's,
            # AWS_ENDPOINT_URL, or the profile's): an emulator on loopback takes dummy
            # credentials when none are configured.
            if is_loopback(created.meta.endpoint_url) and session.get_credentials() is None:
                kwargs.update(LOCAL_CREDENTIALS)
                created = session.client(service, **kwargs)  # type: ignore[call-overload]
            self._clients[service] = created
            return created

    def _config_locked(
        self, session: boto3.session.Session, service: str
    ) -> botocore.config.Config:
        return botocore.config.Config(
            region_name=session.region_name or DEFAULT_REGION,
            # SQS calls are the hot path (a batch call per ten records or messages) and
            # northmigrate's own typed code builds every one of them; botocore's check of
            # their parameters before sending costs about a tenth of each call's CPU, and
            # SQS checks them again on arrival (an error then is an AWS error, exit 3).
            parameter_validation=service != "sqs",
            retries={
                "mode": self.settings.retry_mode,
                "total_max_attempts": self.settings.max_attempts,
            },
            max_pool_connections=self.pool_size,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            tcp_keepalive=True,
        )

    def account_id(self) -> str:
        with aws_errors("sts GetCallerIdentity"):
            return str(self.client("sts").get_caller_identity()["Account"])


_LOADERS: dict[tuple[str, ...], Any] = {}
_LOADERS_LOCK = threading.Lock()


def share_service_models(core: botocore.session.Session) -> None:
    """Let ``core`` read AWS's service models through the loader an earlier session of
    this process with the same search paths used: each model file (endpoints, SQS, STS...)
    is then read and parsed once per process, not once per session, about 100 ms of CPU a
    session with three clients. The loader only reads files and caches what it read; a
    session's own state (credentials, region, profile, clients) is untouched. Called
    before the session made any client."""
    loader = core.get_component("data_loader")
    key = tuple(loader.search_paths)
    with _LOADERS_LOCK:
        shared = _LOADERS.setdefault(key, loader)
    if shared is not loader:
        core.register_component("data_loader", shared)


def configured_endpoint(client: Any) -> str | None:
    """A client's endpoint when it is not one of AWS's own (an emulator, a VPC endpoint)."""
    url = str(client.meta.endpoint_url or "")
    host = urlsplit(url).hostname or ""
    return None if not url or host.endswith(_AWS_HOSTS) else url


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


_ACCESS_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
}
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def translate(exc: BaseException, what: str) -> AwsError:
    """An AwsError with one line that says what went wrong and what to do."""
    if isinstance(
        exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionClosedError
    ):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return AwsError(
            f"cannot reach the AWS endpoint {shown_url(endpoint)} ({what})".replace(" ()", ""),
            hint="is the endpoint running? for the embedded one: northmigrate local",
        )
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return AwsError(
            f"no AWS credentials found ({what})",
            hint="pass --profile, set AWS_PROFILE or aws.profile, "
            "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return AwsError("no AWS region set", hint="pass --region, set AWS_REGION or aws.region")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _MISSING_QUEUE:
            return AwsError(f"{what}: the queue does not exist", hint="run northmigrate provision")
        if code in _ACCESS_CODES:
            return AwsError(
                f"{what}: access denied ({code})", hint="check the IAM policy of your credentials"
            )
        return AwsError(f"{what}: {code}: {message}".rstrip(": "))
    if isinstance(
        exc, botocore.exceptions.ReadTimeoutError | botocore.exceptions.ConnectTimeoutError
    ):
        return AwsError(
            f"{what}: the AWS endpoint timed out", hint="check the network and aws.endpoint_url"
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(f"{what}: {exc}")
    return AwsError(f"{what}: {exc}")


def is_fatal(exc: BaseException) -> bool:
    """True when retrying the same call cannot help: no endpoint, no credentials, no access."""
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.NoRegionError,
    ):
        return True
    return error_code(exc) in _ACCESS_CODES | _MISSING_QUEUE


AWS_EXCEPTIONS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn botocore exceptions raised inside into AwsError (exit 3), keeping the cause."""
    try:
        yield
    except AWS_EXCEPTIONS as exc:
        raise translate(exc, what) from exc
