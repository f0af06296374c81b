"""The embedded AWS endpoint: moto's server (SQS, DynamoDB, S3, IAM, Lambda, CloudWatch…).

moto's SQS scans the whole queue on every call, so it suits queues of up to a few hundred
messages: the demo, tests, trying things out. For volume, point ``aws.endpoint_url`` at a
faster emulator (see README).

moto picks and marks the messages of a ReceiveMessage without a lock, so two receives at
the same moment (a worker has several receivers) could both be handed one message, or two
messages of one FIFO group; SQS never does that within a visibility timeout. The endpoint
makes each receive atomic (:func:`atomic_sqs_receives`), keeping long polling.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

from northmigrate.errors import ConfigError, InputError

DEFAULT_PORT = 4566
_RECEIVE_LOCK = threading.Lock()  # one ReceiveMessage picks its messages at a time
_PATCH_LOCK = threading.Lock()
_patched = False


def atomic_sqs_receives() -> None:
    """Make moto's SQS ReceiveMessage atomic in this process (idempotent).

    Each receive picks its messages under one lock; a long poll waits for messages outside
    it, checking again at least once a second, as moto's own long poll does.
    """
    global _patched
    with _PATCH_LOCK:
        if _patched:
            return
        from moto.sqs.models import SQSBackend

        original = SQSBackend.receive_message

        def receive_message(
            self: Any,
            queue_name: str,
            count: int,
            wait_seconds_timeout: int,
            visibility_timeout: int,
            message_attribute_names: list[str] | None = None,
        ) -> Any:
            deadline = time.monotonic() + wait_seconds_timeout
            while True:
                with _RECEIVE_LOCK:
                    got = original(
                        self, queue_name, count, 0, visibility_timeout, message_attribute_names
                    )
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                # Wakes when a message is visible; one may be visible and still not ours
                # (its FIFO group is in flight): do not spin on it.
                self.get_queue(queue_name).wait_for_messages(min(1.0, remaining))
                time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

        SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
        _patched = True


class EmbeddedEndpoint:
    """A moto server in a background thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.port = port
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ConfigError(
                "the embedded endpoint needs moto's server",
                hint="pip install 'northmigrate[local]'",
            ) from exc
        with socket.socket() as probe:  # fail clearly (exit 2) when the port is taken
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise InputError(
                        f"port {self.port} on {self.host} is already in use",
                        hint="is an endpoint already running? or pass --port N",
                    ) from exc
                raise InputError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
                ) from exc
        # werkzeug logs every request at INFO; only --debug (DEBUG on the root) shows them
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        atomic_sqs_receives()
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.port = int(self._server.get_host_and_port()[1])
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> EmbeddedEndpoint:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
