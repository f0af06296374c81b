"""The fault proxy against a tiny in-process HTTP upstream: HTTP relaying and each fault kind.

The same proxy in front of a real moto server is exercised in
tests/integration/test_emulators.py.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.config
import botocore.exceptions
import pytest
from helpers import aws_client
from support.proxy import FAULT_KINDS, FaultPlan, FaultProxy, fault_response

QUEUE_URL = "http://127.0.0.1/123456789012/q"
SINGLE_ATTEMPT = botocore.config.Config(retries={"total_max_attempts": 1})


class _Handler(BaseHTTPRequestHandler):
    """Records each request; answers JSON (or chunked, or HEAD with a length)."""

    protocol_version = "HTTP/1.1"
    server: _Upstream

    def _record(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            raise AssertionError("the proxy must forward bodies with a Content-Length")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
        return body

    def _answer(self) -> None:
        body = self._record()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = json.dumps({"QueueUrl": QUEUE_URL, "received": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer

    def do_HEAD(self) -> None:
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[FaultProxy]:
    with upstream.lock:
        upstream.received.clear()
    with FaultProxy(upstream.url) as running:
        yield running


def _sqs(url: str) -> Any:
    return aws_client(
        "sqs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=SINGLE_ATTEMPT,
    )


def _request(
    proxy: FaultProxy, method: str = "POST", path: str = "/", body: bytes = b"{}", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request(method, path, body=body if method != "HEAD" else None, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# ------------------------------------------------------------------ the plan


def test_plan_validates_probabilities() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultPlan(throttle=1.5)
    with pytest.raises(ValueError, match="add up"):
        FaultPlan(throttle=0.6, server_error=0.6)
    with pytest.raises(ValueError, match="latency"):
        FaultPlan(latency_s=-1)
    with pytest.raises(ValueError, match="500 or 503"):
        FaultPlan(server_error=1, server_error_status=404)
    assert FaultPlan(throttle=0.25, drop_after=0.25).total == pytest.approx(0.5)


def test_only_targets_matches_full_targets_and_service_prefixes() -> None:
    plan = FaultPlan(throttle=1, only_targets=("AmazonSQS.SendMessageBatch", "DynamoDB_20120810"))
    assert plan.applies_to("AmazonSQS.SendMessageBatch")
    assert not plan.applies_to("AmazonSQS.SendMessage")
    assert plan.applies_to("DynamoDB_20120810.PutItem")
    assert not plan.applies_to(None)
    assert FaultPlan().applies_to(None)


def test_upstream_must_be_plain_http() -> None:
    with pytest.raises(ValueError):
        FaultProxy("https://127.0.0.1:1")
    with pytest.raises(ValueError):
        FaultProxy("http://127.0.0.1:1/prefix")


# ------------------------------------------------------------------ relaying


def test_forwards_boto3_calls_and_counts_them(proxy: FaultProxy, upstream: _Upstream) -> None:
    assert proxy.url.startswith("http://127.0.0.1:") and proxy.port != 0
    sqs = _sqs(proxy.url)
    for _ in range(3):
        assert sqs.get_queue_url(QueueName="q")["QueueUrl"] == QUEUE_URL
    assert proxy.counts["requests"] == proxy.counts["forwarded"] == 3
    assert all(proxy.counts[kind] == 0 for kind in FAULT_KINDS)
    seen = upstream.received[-1]
    assert seen["headers"]["X-Amz-Target"] == "AmazonSQS.GetQueueUrl"
    assert seen["headers"]["Host"] == f"127.0.0.1:{proxy.port}"  # left as the client sent it
    assert json.loads(seen["body"]) == {"QueueName": "q"}


def test_keep_alive_connection_serves_many_requests(proxy: FaultProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        for i in range(5):
            body = b"x" * i
            conn.request("POST", "/", body=body)
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") == "keep-alive"
            assert json.loads(response.read())["received"] == i
    finally:
        conn.close()
    assert proxy.counts["requests"] == 5


def test_chunked_upstream_response_is_relayed_with_a_length(proxy: FaultProxy) -> None:
    status, headers, body = _request(proxy, "GET", "/chunked", b"")
    assert status == 200 and body == b"hello chunked world"
    assert headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in headers


def test_chunked_request_body_is_forwarded_with_a_length(
    proxy: FaultProxy, upstream: _Upstream
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("PUT", "/obj", body=iter([b"abc", b"defg"]), encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["received"] == 7
    finally:
        conn.close()
    assert upstream.received[-1]["body"] == b"abcdefg"


def test_head_keeps_upstream_content_length(proxy: FaultProxy) -> None:
    status, headers, body = _request(proxy, "HEAD", "/obj")
    assert status == 200 and body == b"" and headers["Content-Length"] == "1234"


def test_expect_100_continue_is_answered(proxy: FaultProxy, upstream: _Upstream) -> None:
    status, _, body = _request(proxy, "PUT", "/obj", b"payload", Expect="100-continue")
    assert status == 200 and json.loads(body)["received"] == 7
    assert "Expect" not in upstream.received[-1]["headers"]


def test_upstream_down_answers_502() -> None:
    with FaultProxy("http://127.0.0.1:1") as proxy:
        status, _, _ = _request(proxy)
        assert status == 502
        assert proxy.counts["upstream_error"] == 1 and proxy.counts["forwarded"] == 0


# ------------------------------------------------------------------ latency


def test_latency_is_added_to_each_request(proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(latency_s=0.05)
    sqs = _sqs(proxy.url)
    sqs.get_queue_url(QueueName="q")  # connection set up outside the measure
    for _ in range(3):
        started = time.perf_counter()
        sqs.get_queue_url(QueueName="q")
        assert time.perf_counter() - started >= 0.05


def test_latency_does_not_serialise_concurrent_clients(proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(latency_s=0.25)
    clients = 32

    def one(_: int) -> int:
        return _request(proxy)[0]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(one, range(clients)))
    elapsed = time.perf_counter() - started
    assert statuses == [200] * clients
    assert elapsed >= 0.25
    assert elapsed < clients * 0.25 / 2, f"{clients} requests took {elapsed:.2f} s: serialised?"


def test_many_concurrent_keep_alive_clients(proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(latency_s=0.01)
    sqs = aws_client(
        "sqs",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(max_pool_connections=64, retries={"total_max_attempts": 1}),
    )

    def calls(_: int) -> int:
        return sum(sqs.get_queue_url(QueueName="q")["QueueUrl"] == QUEUE_URL for _ in range(5))

    with ThreadPoolExecutor(64) as pool:
        assert sum(pool.map(calls, range(64))) == 64 * 5
    assert proxy.counts["forwarded"] == 64 * 5


# ------------------------------------------------------------------ faults


def test_throttle_is_an_sqs_throttling_error(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.plan = FaultPlan(throttle=1)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        _sqs(proxy.url).get_queue_url(QueueName="q")
    error = raised.value.response
    assert error["Error"]["Code"] == "ThrottlingException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert proxy.counts["throttle"] == 1 and proxy.counts["forwarded"] == 0
    assert upstream.received == []


def test_throttle_is_a_dynamodb_throughput_error(proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(throttle=1)
    dynamodb = aws_client(
        "dynamodb",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=SINGLE_ATTEMPT,
    )
    with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException):
        dynamodb.get_item(TableName="table", Key={"id": {"S": "1"}})


def test_fault_response_without_a_target_is_query_xml() -> None:
    response = fault_response("throttle", None)
    assert response.status == 400 and b"<Code>Throttling</Code>" in response.body
    assert fault_response("server_error", None, 503).status == 503


@pytest.mark.parametrize("status", [500, 503])
def test_server_error(proxy: FaultProxy, upstream: _Upstream, status: int) -> None:
    proxy.plan = FaultPlan(server_error=1, server_error_status=status)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        _sqs(proxy.url).get_queue_url(QueueName="q")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["Error"]["Code"] == ("InternalError" if status == 500 else "ServiceUnavailable")
    assert proxy.counts["server_error"] == 1 and upstream.received == []


def test_reset_before_never_reaches_upstream(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.plan = FaultPlan(reset_before=1)
    with pytest.raises((botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)):
        _sqs(proxy.url).get_queue_url(QueueName="q")
    assert proxy.counts["reset_before"] == 1 and proxy.counts["forwarded"] == 0
    assert upstream.received == []


def test_drop_after_reaches_upstream_but_not_the_client(
    proxy: FaultProxy, upstream: _Upstream
) -> None:
    proxy.plan = FaultPlan(drop_after=1)
    with pytest.raises((botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)):
        _sqs(proxy.url).get_queue_url(QueueName="dropped")
    assert proxy.counts["drop_after"] == proxy.counts["forwarded"] == 1
    assert json.loads(upstream.received[-1]["body"]) == {"QueueName": "dropped"}


def test_only_targets_spares_other_actions(proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(throttle=1, only_targets=("AmazonSQS.SendMessage",))
    sqs = _sqs(proxy.url)
    assert sqs.get_queue_url(QueueName="q")["QueueUrl"] == QUEUE_URL
    with pytest.raises(botocore.exceptions.ClientError):
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody="hello")
    assert proxy.counts["throttle"] == 1 and proxy.counts["forwarded"] == 1


def test_mixed_plan_is_reproducible_with_a_seed(upstream: _Upstream) -> None:
    def run() -> dict[str, int]:
        plan = FaultPlan(throttle=0.3, server_error=0.2, seed=7)
        with FaultProxy(upstream.url, plan) as proxy:
            for _ in range(40):
                _request(proxy)
            return proxy.counts

    first, second = run(), run()
    assert first == second
    assert first["requests"] == 40
    assert first["throttle"] > 0 and first["server_error"] > 0 and first["forwarded"] > 0
    assert first["throttle"] + first["server_error"] + first["forwarded"] == 40


def test_plan_can_be_cleared_at_run_time(proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(throttle=1)
    assert _request(proxy)[0] == 400
    proxy.plan = FaultPlan()
    assert _request(proxy)[0] == 200
    proxy.reset_counts()
    assert proxy.counts["requests"] == 0


def test_stop_is_idempotent_and_closes_the_port(upstream: _Upstream) -> None:
    proxy = FaultProxy(upstream.url)
    proxy.start()
    port = proxy.port
    assert _request(proxy)[0] == 200
    proxy.stop()
    proxy.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
