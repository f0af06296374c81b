"""A loopback HTTP/1.1 reverse proxy that adds latency and injects AWS-shaped faults.

Point a boto3 client's ``endpoint_url`` at :attr:`FaultProxy.url` and every request goes
through the proxy on its way to the real (emulated) endpoint::

    with start_moto() as moto, FaultProxy(moto.url, FaultPlan(latency_s=0.02)) as proxy:
        sqs = boto3.client("sqs", endpoint_url=proxy.url, ...)

The proxy runs an asyncio event loop in a daemon thread of the calling process. Each client
connection is served by its own task, so added latency (``asyncio.sleep``) never serialises
requests; keep-alive client connections are supported, and upstream connections are pooled.
Requests are read whole (Content-Length or chunked bodies), upstream responses are read whole
(Content-Length, chunked or until close) and relayed with a Content-Length.

Faults are drawn once per request, from one uniform draw, so each kind fires with exactly its
own probability (their sum must not exceed 1):

``reset_before``
    the client connection is reset (TCP RST); the request never reaches upstream.
``throttle``
    a 400 throttling error in the wire format of the request's service, without forwarding.
``server_error``
    a 500 (or ``server_error_status``) error, without forwarding.
``drop_after``
    the request is forwarded and upstream acts on it, then the client connection is reset
    without a response: the case where a client must not assume its call failed.

Only for loopback use in tests and benchmarks: it binds 127.0.0.1 by default and speaks
plain HTTP only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["FAULT_KINDS", "FaultPlan", "FaultProxy"]

FAULT_KINDS = ("reset_before", "throttle", "server_error", "drop_after")
"""The kinds of fault a :class:`FaultPlan` can inject, in the order they are drawn."""

COUNTER_KEYS = ("requests", "forwarded", *FAULT_KINDS, "upstream_error")
"""The keys of :attr:`FaultProxy.counts`."""

_STREAM_LIMIT = 1 << 20  # longest request/response head or chunk-size line accepted
_MAX_IDLE_UPSTREAM = 256
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Headers = list[tuple[str, str]]


@dataclass
class FaultPlan:
    """What the proxy does to each request. Probabilities are 0..1 and default to 0.

    A plan can be replaced at run time (``proxy.plan = FaultPlan()``); a request uses the plan
    in force when it arrived.
    """

    latency_s: float = 0.0
    """Added before each request is handled, faulted or not (``asyncio.sleep``, per request)."""
    reset_before: float = 0.0
    """Reset the client connection before the request reaches upstream."""
    drop_after: float = 0.0
    """Forward the request, let upstream act, then reset the client connection unanswered."""
    throttle: float = 0.0
    """Answer 400 with the service's throttling error, without forwarding."""
    server_error: float = 0.0
    """Answer ``server_error_status`` (500 InternalError or 503), without forwarding."""
    seed: int | None = None
    """Seed of the fault draws, for a reproducible sequence; ``None`` for a random one."""
    only_targets: tuple[str, ...] = ()
    """If non-empty, inject faults only into requests whose ``X-Amz-Target`` is listed, in
    full (``"AmazonSQS.SendMessageBatch"``, ``"DynamoDB_20120810.PutItem"``) or by service
    prefix (``"AmazonSQS"``). Latency still applies to every request."""
    server_error_status: int = 500
    """The status of a ``server_error`` fault: 500 (InternalError) or 503 (ServiceUnavailable)."""

    def __post_init__(self) -> None:
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, not {self.latency_s}")
        for kind in FAULT_KINDS:
            p = getattr(self, kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{kind} is a probability (0..1), not {p}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {self.total:g}, more than 1")
        if self.server_error_status not in (500, 503):
            raise ValueError(
                f"server_error_status must be 500 or 503, not {self.server_error_status}"
            )
        self.only_targets = tuple(self.only_targets)

    @property
    def total(self) -> float:
        """The probability that a (targeted) request is faulted at all."""
        return float(sum(getattr(self, kind) for kind in FAULT_KINDS))

    def applies_to(self, target: str | None) -> bool:
        """Whether faults may be injected into a request with this ``X-Amz-Target``."""
        if not self.only_targets:
            return True
        if not target:
            return False
        return target in self.only_targets or target.split(".", 1)[0] in self.only_targets


class _BadRequest(Exception):
    """The client sent something that is not an HTTP/1.x request this proxy understands."""


class _UpstreamError(Exception):
    """Upstream could not be reached or answered with something unreadable."""


class _StaleConnection(Exception):
    """A pooled upstream connection was closed by upstream before it answered anything."""


@dataclass
class _Upstream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class _Response:
    status: int
    reason: str
    headers: Headers
    body: bytes


def _header(headers: Headers, name: str) -> str | None:
    """The first value of a header (``name`` in lower case), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, Headers] | None:
    """The start line and headers of the next message; None on a clean end of stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest("message head too large") from exc
    lines = raw.decode("latin-1").split("\r\n")
    headers: Headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequest(f"bad chunk size {line[:40]!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, dropped
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _read_body(reader: asyncio.StreamReader, headers: Headers, *, until_close: bool) -> bytes:
    if "chunked" in _tokens(_header(headers, "transfer-encoding")):
        return await _read_chunked(reader)
    length = _header(headers, "content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError as exc:
            raise _BadRequest(f"bad Content-Length {length!r}") from exc
        return await reader.readexactly(size) if size else b""
    return await reader.read() if until_close else b""


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    head = start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a client connection with a TCP reset, discarding anything unsent."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# Error shapes, per wire protocol: (status, code) -> {protocol: (code, fault side)}.
_SQS_CODES = {
    "throttle": ("ThrottlingException", "Sender", "Rate exceeded"),
    500: ("InternalError", "Receiver", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Receiver", "The request has failed due to a temporary failure."),
}
_DYNAMODB_CODES = {
    "throttle": (
        "ProvisionedThroughputExceededException",
        "",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    500: ("InternalServerError", "", "Internal server error"),
    503: ("ServiceUnavailable", "", "The service is currently unavailable or busy."),
}
_GENERIC_CODES = {
    "throttle": ("ThrottlingException", "Sender", "Rate exceeded"),
    500: ("InternalError", "Receiver", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Receiver", "The service is currently unavailable."),
}


def fault_response(kind: str, target: str | None, status: int = 500) -> _Response:
    """The error a fault of ``kind`` ("throttle" or "server_error") answers with.

    The format follows the request's ``X-Amz-Target``: SQS's JSON protocol (with the
    ``x-amzn-query-error`` header botocore reads the code from), DynamoDB's JSON protocol,
    another JSON-protocol service, or, without a target, a query/XML-protocol error.
    """
    key: str | int = "throttle" if kind == "throttle" else status
    status = 400 if kind == "throttle" else status
    request_id = str(uuid.uuid4())
    headers: Headers = [("x-amzn-RequestId", request_id)]
    if target and target.startswith("AmazonSQS"):
        code, side, message = _SQS_CODES[key]
        body = {"__type": f"com.amazonaws.sqs#{code}", "message": message}
        headers += [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", f"{code};{side}"),
        ]
    elif target and target.startswith("DynamoDB"):
        code, _, message = _DYNAMODB_CODES[key]
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
        headers.append(("Content-Type", "application/x-amz-json-1.0"))
    elif target:
        code, _, message = _GENERIC_CODES[key]
        body = {"__type": code, "message": message}
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
    else:
        code, side, message = _GENERIC_CODES[key]
        if code == "ThrottlingException":
            code = "Throttling"
        xml = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
        headers += [("Content-Type", "text/xml"), ("x-amz-request-id", request_id)]
        return _Response(status, _REASONS[status], headers, xml.encode())
    return _Response(status, _REASONS[status], headers, json.dumps(body).encode())


class FaultProxy:
    """An HTTP/1.1 reverse proxy to ``upstream`` that adds latency and injects faults.

    ``start()`` (or ``with``) runs it on an event loop in a daemon thread and returns its
    URL; ``stop()`` closes every connection. :attr:`plan` can be replaced while it runs, and
    :attr:`counts` tells what it did.
    """

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        upstream_timeout_s: float = 120.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"upstream must not have a path or query: {upstream!r}")
        self.upstream = upstream
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self.host = host
        self.port = port
        self.upstream_timeout_s = upstream_timeout_s
        self._plan = plan or FaultPlan()
        self._random = random.Random(self._plan.seed)
        self._counts = dict.fromkeys(COUNTER_KEYS, 0)
        self._counts_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._idle: list[_Upstream] = []

    # ----------------------------------------------------------------- public API

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the proxy (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """Replace the plan; a seeded plan restarts its draw sequence."""
        self._random = random.Random(plan.seed)
        self._plan = plan

    @property
    def counts(self) -> dict[str, int]:
        """A snapshot of the counters: ``requests`` received, ``forwarded`` upstream
        (``drop_after`` requests included), each fault kind injected, and ``upstream_error``
        (upstream unreachable or unreadable: answered 502)."""
        with self._counts_lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts = dict.fromkeys(COUNTER_KEYS, 0)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Start serving; returns :attr:`url`."""
        if self._loop is not None:
            raise RuntimeError("the proxy is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout=10)
        except BaseException:
            self._stop_loop()
            raise
        return self.url

    def stop(self) -> None:
        """Close the listener, every client and upstream connection, and the loop's thread."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        self._stop_loop()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultProxy({self.upstream!r} via {self.url}, {self._plan!r})"

    # ----------------------------------------------------------------- lifecycle

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_client, self.host, self.port, limit=_STREAM_LIMIT, backlog=512
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        while self._idle:
            self._idle.pop().close()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    # ----------------------------------------------------------------- clients

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        reset = False
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    break
                method, path, version = self._parse_request_line(head[0])
                headers = head[1]
                if "100-continue" in _tokens(_header(headers, "expect")):
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await _read_body(reader, headers, until_close=False)
                connection = _tokens(_header(headers, "connection"))
                keep_alive = "close" not in connection and (
                    version == "HTTP/1.1" or "keep-alive" in connection
                )
                response = await self._handle(method, path, headers, body)
                if response is None:
                    _reset(writer)
                    reset = True
                    return
                writer.write(self._client_response(method, response, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except _BadRequest as exc:
            error = _Response(
                400, "Bad Request", [("Content-Type", "text/plain")], str(exc).encode()
            )
            with contextlib.suppress(Exception):
                writer.write(self._client_response("GET", error, keep_alive=False))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away mid-message
        except asyncio.CancelledError:
            # stop(): end quietly (asyncio's stream callback would log a cancelled task)
            _reset(writer)
            reset = True
        finally:
            if task is not None:
                self._clients.discard(task)
            if not reset:
                with contextlib.suppress(Exception):
                    writer.close()

    @staticmethod
    def _parse_request_line(line: str) -> tuple[str, str, str]:
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"not an HTTP/1.x request line: {line[:80]!r}")
        return parts[0], parts[1], parts[2]

    async def _handle(
        self, method: str, path: str, headers: Headers, body: bytes
    ) -> _Response | None:
        """The response to relay, or None to reset the client connection."""
        plan = self._plan
        self._count("requests")
        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        target = _header(headers, "x-amz-target")
        fault = self._draw(plan, target)
        if fault == "reset_before":
            self._count(fault)
            return None
        if fault in ("throttle", "server_error"):
            self._count(fault)
            return fault_response(fault, target, plan.server_error_status)
        try:
            response = await self._forward(method, path, headers, body)
        except _UpstreamError as exc:
            self._count("upstream_error")
            message = json.dumps({"message": f"fault proxy: upstream {self.upstream}: {exc}"})
            return _Response(
                502, "Bad Gateway", [("Content-Type", "application/json")], message.encode()
            )
        self._count("forwarded")
        if fault == "drop_after":
            self._count(fault)
            return None
        return response

    def _draw(self, plan: FaultPlan, target: str | None) -> str | None:
        if plan.total <= 0 or not plan.applies_to(target):
            return None
        u = self._random.random()
        for kind in FAULT_KINDS:
            p: float = getattr(plan, kind)
            if u < p:
                return kind
            u -= p
        return None

    @staticmethod
    def _client_response(method: str, response: _Response, keep_alive: bool) -> bytes:
        bodyless = method == "HEAD" or response.status in (204, 304) or response.status < 200
        headers: Headers = []
        for name, value in response.headers:
            lower = name.lower()
            if lower in _HOP_BY_HOP or (lower == "content-length" and not bodyless):
                continue
            headers.append((name, value))
        if not bodyless:
            headers.append(("Content-Length", str(len(response.body))))
        headers.append(("Connection", "keep-alive" if keep_alive else "close"))
        start = f"HTTP/1.1 {response.status} {response.reason}"
        return _serialize(start, headers, b"" if bodyless else response.body)

    # ----------------------------------------------------------------- upstream

    async def _forward(self, method: str, path: str, headers: Headers, body: bytes) -> _Response:
        out: Headers = [
            (k, v)
            for k, v in headers
            if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "expect")
        ]
        if body or method in ("POST", "PUT", "PATCH"):
            out.append(("Content-Length", str(len(body))))
        out.append(("Connection", "keep-alive"))
        data = _serialize(f"{method} {path} HTTP/1.1", out, body)
        for _attempt in range(3):  # a pooled connection may have been closed while idle
            conn, reused = await self._acquire()
            try:
                async with asyncio.timeout(self.upstream_timeout_s):
                    response, reusable = await self._exchange(conn, method, data)
            except _StaleConnection:
                conn.close()
                if reused:
                    continue
                raise _UpstreamError("connection closed before a response") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.close()
                raise _UpstreamError(f"{type(exc).__name__}: {exc}") from exc
            except TimeoutError:
                conn.close()
                raise _UpstreamError(f"no response in {self.upstream_timeout_s:g} s") from None
            except _BadRequest as exc:
                conn.close()
                raise _UpstreamError(f"unreadable response: {exc}") from exc
            if reusable and self._server is not None and len(self._idle) < _MAX_IDLE_UPSTREAM:
                self._idle.append(conn)
            else:
                conn.close()
            return response
        raise _UpstreamError("upstream keeps closing connections")

    async def _acquire(self) -> tuple[_Upstream, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn, True
            conn.close()
        try:
            reader, writer = await asyncio.open_connection(
                self._upstream_host, self._upstream_port, limit=_STREAM_LIMIT
            )
        except OSError as exc:
            raise _UpstreamError(f"cannot connect: {exc}") from exc
        return _Upstream(reader, writer), False

    @staticmethod
    async def _exchange(conn: _Upstream, method: str, data: bytes) -> tuple[_Response, bool]:
        """Send one request; read its whole response. Returns it and whether the connection
        can be reused. Raises _StaleConnection if upstream closed before answering."""
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            head = await _read_head(conn.reader)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _StaleConnection from exc
        while True:
            if head is None:
                raise _StaleConnection
            start, headers = head
            parts = start.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise _BadRequest(f"not an HTTP/1.x status line: {start[:80]!r}")
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else _REASONS.get(status, "")
            if 100 <= status < 200 and status != 101:
                head = await _read_head(conn.reader)  # an interim response: skip it
                continue
            break
        connection = _tokens(_header(headers, "connection"))
        bodyless = method == "HEAD" or status in (204, 304)
        framed = (
            "chunked" in _tokens(_header(headers, "transfer-encoding"))
            or _header(headers, "content-length") is not None
        )
        body = b"" if bodyless else await _read_body(conn.reader, headers, until_close=True)
        reusable = (
            (bodyless or framed)
            and "close" not in connection
            and (version == "HTTP/1.1" or "keep-alive" in connection)
        )
        return _Response(status, reason, headers, body), reusable
