"""What kind of failure an exception is: the one place that decides it (everyone asks here).

Three kinds, each with its own answer (docs/guarantees.md, "Three kinds of failure"):

- ``record``: a logic error in this record (the plugin's ``PermanentError``, a record that
  does not validate, and any exception not known to be one of the other two). Retried
  quickly up to ``max_receive_count`` tries, then dead-lettered; the other records go on.
- ``throttled``: the target refuses for now (``ThrottlingException``,
  ``TooManyRequestsException``, ``ProvisionedThroughputExceededException``,
  ``RequestLimitExceeded``, ``SlowDown``, HTTP 429, :class:`Throttled`). Not an attempt: the
  record comes back later; the guard slows the consumers down.
- ``outage``: the target is not there (connection refused or reset, DNS failure, connect
  and read timeouts, HTTP 5xx, ``ServiceUnavailable``, :class:`TargetUnavailable`). Retried
  with patience; the guard closes the tap and a probe reopens it.

The exception, its ``raise … from`` cause and its context are looked at, outermost first:
the first one known to be throttled or an outage decides. Connection errors of requests,
httpx and urllib3 are recognised by class name and module through the MRO, so that none of
those libraries is imported here. A migration may decide first
(``Migration(classify=...)``): it returns a kind, or None to leave it to these rules.

A leaf: it imports only the standard library, botocore and :mod:`northmigrate.errors`.
"""

from __future__ import annotations

import socket
import urllib.error
from collections.abc import Callable, Iterator

import botocore.exceptions

from northmigrate.errors import NorthmigrateError

RECORD = "record"
THROTTLED = "throttled"
OUTAGE = "outage"
KINDS = (RECORD, THROTTLED, OUTAGE)

Classify = Callable[[BaseException], str | None]

THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
OUTAGE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceException",
    }
)
# Connection errors of HTTP libraries, by module (its top package) and class name; any class
# in the exception's MRO may match (requests' ConnectTimeout is one of its ConnectionErrors).
_LIBRARY_OUTAGES = {
    "requests": {"ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout"},
    "httpx": {"TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError"},
    "urllib3": {
        "NewConnectionError",
        "MaxRetryError",
        "ProtocolError",
        "TimeoutError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "NameResolutionError",
    },
    "aiohttp": {"ClientConnectionError", "ServerTimeoutError"},
}
_BOTOCORE_OUTAGES = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.HTTPClientError,
)
_CHAIN_LIMIT = 8  # causes and contexts looked at, at most


class Throttled(Exception):
    """The target asks to slow down: the record comes back later and is not charged a try.

    A plugin raises it when its target says so in a way northmigrate cannot see (a 429 of
    its own client, a quota error of its own); the guard then lowers the tap's limit.
    """


class TargetUnavailable(Exception):
    """The target is not there (down, unreachable): an outage. The guard closes the tap when
    enough records meet it, and a probe reopens the tap once the target answers again."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_LIMIT:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (a ClientError's, requests'/httpx's response,
    urllib's code), if any."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code
    response = getattr(exc, "response", None)
    for holder in (response, exc):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def _by_library_class(exc: BaseException) -> bool:
    for cls in type(exc).__mro__:
        package = cls.__module__.split(".", 1)[0]
        if cls.__name__ in _LIBRARY_OUTAGES.get(package, ()):
            return True
    return False


def _one(exc: BaseException) -> str | None:
    """The kind this exception alone shows, or None when it shows none."""
    if isinstance(exc, Throttled):
        return THROTTLED
    if isinstance(exc, TargetUnavailable):
        return OUTAGE
    code = ""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
    names = {code, type(exc).__name__}
    status = _status(exc)
    if names & THROTTLE_CODES or status == 429:
        return THROTTLED
    if names & OUTAGE_CODES or (status is not None and 500 <= status <= 599):
        return OUTAGE
    if isinstance(exc, (*_BOTOCORE_OUTAGES, ConnectionError, TimeoutError, socket.gaierror)):
        return OUTAGE
    if _by_library_class(exc):
        return OUTAGE
    return None


def classify(exc: BaseException, override: Classify | None = None) -> str:
    """The kind of ``exc``: ``record``, ``throttled`` or ``outage`` (see the module docstring).

    ``override`` (a migration's ``classify``) is asked first; a kind it returns wins, None
    (or an answer that is not a kind) leaves it to the rules. An override that raises is
    ignored: classifying must never fail a record's path.
    """
    if override is not None:
        try:
            chosen = override(exc)
        except Exception:  # the plugin's classifier broke: the rules decide
            chosen = None
        if chosen in KINDS:
            return str(chosen)
    if isinstance(exc, NorthmigrateError) and exc.__cause__ is None:
        return RECORD  # northmigrate's own error without a cause: nothing external
    for link in _chain(exc):
        kind = _one(link)
        if kind is not None:
            return kind
    return RECORD
