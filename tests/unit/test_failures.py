"""One place decides a failure's kind: record, throttled or outage (northmigrate.failures)."""

from __future__ import annotations

import ast
import socket
import sys
import urllib.error
from email.message import Message
from pathlib import Path

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

import northmigrate
from northmigrate import TargetUnavailable, Throttled
from northmigrate.errors import AwsError, ConfigError
from northmigrate.failures import OUTAGE, OUTAGE_CODES, RECORD, THROTTLE_CODES, THROTTLED, classify
from northmigrate.plugin import PermanentError


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutItem",
    )


def library_error(module: str, name: str, base: type[Exception] = Exception) -> Exception:
    """An exception class as a library defines it (requests, httpx, urllib3), not imported."""
    cls = type(name, (base,), {"__module__": module})
    return cls("boom")


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
    ],
)
def test_the_throttling_codes_are_throttled(code: str) -> None:
    assert classify(client_error(code)) == THROTTLED


def test_http_429_and_the_plugins_throttled_are_throttled() -> None:
    assert classify(client_error("Whatever", 429)) == THROTTLED
    assert classify(Throttled("slow down")) == THROTTLED
    http = urllib.error.HTTPError("http://x", 429, "Too Many", Message(), None)
    assert classify(http) == THROTTLED

    class Response:
        status_code = 429

    error = library_error("requests.exceptions", "HTTPError")
    error.response = Response()  # type: ignore[attr-defined]
    assert classify(error) == THROTTLED


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
        socket.gaierror(-2, "Name or service not known"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
        botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"),
        client_error("ServiceUnavailable", 503),
        client_error("InternalServerError", 500),
        client_error("Odd", 502),
        TargetUnavailable("down"),
        urllib.error.HTTPError("http://x", 503, "Unavailable", Message(), None),
    ],
    ids=repr,
)
def test_outages(exc: BaseException) -> None:
    assert classify(exc) == OUTAGE


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("requests.exceptions", "ConnectionError"),
        ("requests.exceptions", "ReadTimeout"),
        ("httpx", "ConnectError"),  # an httpx.TransportError by its MRO
        ("urllib3.exceptions", "NewConnectionError"),
        ("urllib3.exceptions", "MaxRetryError"),
    ],
)
def test_http_libraries_connection_errors_by_class_and_module(module: str, name: str) -> None:
    base: type[Exception] = Exception
    if module == "httpx":
        base = type("TransportError", (Exception,), {"__module__": "httpx._exceptions"})
    assert classify(library_error(module, name, base)) == OUTAGE
    assert classify(library_error("myplugin.errors", name)) == RECORD  # not the library's


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("province missing"),
        KeyError("country"),
        PermanentError("not accepted"),
        client_error("ValidationException"),
        client_error("ConditionalCheckFailedException"),
        ConfigError("bad"),
        SystemExit(1),
    ],
    ids=repr,
)
def test_everything_else_is_a_record_error(exc: BaseException) -> None:
    assert classify(exc) == RECORD


def test_the_cause_decides_when_the_wrapper_says_nothing() -> None:
    try:
        try:
            raise client_error("ThrottlingException")
        except ClientError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert classify(outer) == THROTTLED
    try:
        try:
            raise ConnectionResetError("reset")
        except OSError as inner:
            raise AwsError("cannot reach the endpoint") from inner
    except AwsError as wrapped:
        assert classify(wrapped) == OUTAGE


def test_a_migrations_classify_decides_first_and_none_leaves_it_to_the_rules() -> None:
    def mine(exc: BaseException) -> str | None:
        if isinstance(exc, KeyError):
            return "outage"
        if isinstance(exc, LookupError):
            return "not a kind"
        if isinstance(exc, ArithmeticError):
            raise RuntimeError("the classifier itself broke")
        return None

    assert classify(KeyError("x"), mine) == OUTAGE
    assert classify(IndexError("x"), mine) == RECORD  # not a kind: the rules
    assert classify(ZeroDivisionError(), mine) == RECORD  # it raised: the rules
    assert classify(client_error("SlowDown"), mine) == THROTTLED


def test_the_plugin_api_face_exports_the_kinds() -> None:
    assert northmigrate.Throttled is Throttled
    assert northmigrate.TargetUnavailable is TargetUnavailable
    assert {"Throttled", "TargetUnavailable"} <= set(northmigrate.__all__)


def test_no_other_module_names_a_failure_code() -> None:
    """The codes live in failures.py: nothing else in the package tells kinds by name."""
    root = Path(northmigrate.__file__).parent
    codes = THROTTLE_CODES | OUTAGE_CODES
    found = []
    for path in root.rglob("*.py"):
        if path.name == "failures.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in codes:
                found.append(f"{path.relative_to(root)}: {node.value}")
    assert found == []


def test_failures_is_a_leaf() -> None:
    source = (Path(northmigrate.__file__).parent / "failures.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    ours = {name for name in imported if name.startswith("northmigrate")}
    assert ours <= {"northmigrate.errors"}
    others = {name.split(".")[0] for name in imported} - {"northmigrate", "botocore"}
    assert others - {"__future__"} <= sys.stdlib_module_names
