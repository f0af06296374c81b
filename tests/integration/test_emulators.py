"""Local AWS endpoints as processes, and the fault proxy in front of a real moto server."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.config
import botocore.exceptions
import pytest
from helpers import aws_client
from support.emulators import (
    Emulator,
    find_ministack,
    free_port,
    start_ministack,
    start_moto,
)
from support.proxy import FaultPlan, FaultProxy

pytestmark = pytest.mark.integration
CONNECTION_ERRORS = (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)
needs_ministack = pytest.mark.skipif(
    find_ministack() is None,
    reason="ministack is not installed (make ministack, or set NORTHMIGRATE_MINISTACK)",
)


def _client(service: str, url: str, attempts: int = 1) -> Any:
    return aws_client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"total_max_attempts": attempts}),
    )


@pytest.fixture(scope="module")
def moto() -> Iterator[Emulator]:
    with start_moto() as emulator:
        yield emulator


@pytest.fixture
def proxy(moto: Emulator) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as running:
        yield running


@pytest.fixture
def queue(moto: Emulator, request: pytest.FixtureRequest) -> str:
    name = f"q-{request.node.name}".replace("[", "-").replace("]", "")[:70]
    return str(_client("sqs", moto.url).create_queue(QueueName=name)["QueueUrl"])


def _bodies(url: str, queue: str) -> list[str]:
    sqs = _client("sqs", url, attempts=3)
    out: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        out += [m["Body"] for m in batch]
    return out


# ------------------------------------------------------------------ emulator processes


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_moto_answers_on_loopback(moto: Emulator) -> None:
    assert moto.url.startswith("http://127.0.0.1:") and moto.alive()
    sqs = _client("sqs", moto.url)
    url = sqs.create_queue(QueueName="hello")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hi")
    assert _bodies(moto.url, url) == ["hi"]


def test_stop_ends_the_process_and_removes_its_files() -> None:
    emulator = start_moto()
    workdir = emulator.workdir
    assert workdir.is_dir() and emulator.log_path.is_file()
    emulator.stop()
    assert emulator.process.returncode is not None and not workdir.exists()
    emulator.stop()  # idempotent
    port = int(emulator.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_start_on_a_taken_port_fails_clearly(moto: Emulator) -> None:
    port = int(moto.url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="already in use"):
        start_moto(port, timeout=15)


def test_find_ministack_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "ministack"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv("NORTHMIGRATE_MINISTACK", str(binary))
    assert find_ministack() == str(binary)


def test_start_ministack_names_the_install_step(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="pip install ministack"):
        start_ministack(executable=str(tmp_path / "missing"))


# ------------------------------------------------------------------ the proxy in front of moto


def test_proxy_forwards_sqs_calls(proxy: FaultProxy, queue: str) -> None:
    sqs = _client("sqs", proxy.url)
    sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
    )
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in received) == sorted(f"m{i}" for i in range(10))
    sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in received],
    )
    assert proxy.counts["forwarded"] == proxy.counts["requests"] == 3


def test_proxy_adds_latency(proxy: FaultProxy, queue: str) -> None:
    sqs = _client("sqs", proxy.url)
    sqs.get_queue_attributes(QueueUrl=queue)
    proxy.plan = FaultPlan(latency_s=0.1)
    for _ in range(3):
        started = time.perf_counter()
        sqs.send_message(QueueUrl=queue, MessageBody="slow")
        assert time.perf_counter() - started >= 0.1


def test_throttle(proxy: FaultProxy, queue: str, moto: Emulator) -> None:
    proxy.plan = FaultPlan(throttle=1)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        _client("sqs", proxy.url).send_message(QueueUrl=queue, MessageBody="throttled")
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert proxy.counts["throttle"] == 1
    assert _bodies(moto.url, queue) == []


def test_server_error(proxy: FaultProxy, queue: str, moto: Emulator) -> None:
    proxy.plan = FaultPlan(server_error=1)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        _client("sqs", proxy.url).send_message(QueueUrl=queue, MessageBody="failed")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert proxy.counts["server_error"] == 1
    assert _bodies(moto.url, queue) == []


def test_reset_before(proxy: FaultProxy, queue: str, moto: Emulator) -> None:
    proxy.plan = FaultPlan(reset_before=1)
    with pytest.raises(CONNECTION_ERRORS):
        _client("sqs", proxy.url).send_message(QueueUrl=queue, MessageBody="reset")
    assert proxy.counts["reset_before"] == 1
    assert _bodies(moto.url, queue) == []


def test_drop_after_delivers_but_the_client_sees_an_error(
    proxy: FaultProxy, queue: str, moto: Emulator
) -> None:
    proxy.plan = FaultPlan(drop_after=1)
    with pytest.raises(CONNECTION_ERRORS):
        _client("sqs", proxy.url).send_message(QueueUrl=queue, MessageBody="delivered anyway")
    assert proxy.counts["drop_after"] == 1
    assert _bodies(moto.url, queue) == ["delivered anyway"]


def test_retries_get_through_faults_on_targeted_actions(
    proxy: FaultProxy, queue: str, moto: Emulator
) -> None:
    proxy.plan = FaultPlan(
        throttle=0.3, server_error=0.2, seed=3, only_targets=("AmazonSQS.SendMessage",)
    )
    sqs = _client("sqs", proxy.url, attempts=10)
    for i in range(10):
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
    proxy.plan = FaultPlan()
    assert sorted(_bodies(proxy.url, queue)) == sorted(f"m{i}" for i in range(10))
    counts = proxy.counts
    assert counts["throttle"] + counts["server_error"] > 0


# ------------------------------------------------------------------ ministack


@pytest.mark.volume
@needs_ministack
def test_ministack_answers_and_stays_in_its_directory() -> None:
    with start_ministack() as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        sqs = _client("sqs", emulator.url)
        url = sqs.create_queue(QueueName="volume")["QueueUrl"]
        for start in range(0, 500, 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
            )
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "500"
        assert any(p.name.startswith("ministack-") for p in emulator.workdir.iterdir())
        workdir = emulator.workdir
    assert emulator.process.returncode is not None and not workdir.exists()


@pytest.mark.volume
@needs_ministack
def test_proxy_in_front_of_ministack() -> None:
    with (
        start_ministack() as emulator,
        FaultProxy(emulator.url, FaultPlan(latency_s=0.02)) as proxy,
    ):
        sqs = _client("sqs", proxy.url)
        url = sqs.create_queue(QueueName="proxied")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="through the proxy")
        assert _bodies(proxy.url, url) == ["through the proxy"]
        assert proxy.counts["forwarded"] >= 3


def test_environment_is_not_leaked_to_emulators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with start_moto() as emulator:
        environ = Path(f"/proc/{emulator.process.pid}/environ")
        if environ.exists():
            assert b"AWS_ENDPOINT_URL" not in environ.read_bytes()
        assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
