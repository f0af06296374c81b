"""The embedded AWS endpoint: moto's server (SQS, DynamoDB, S3, IAM, Lambda, CloudWatch…).

moto's SQS scans the whole queue on every call, so it suits queues of up to a few hundred
messages: the demo, tests, trying things out. For volume, point ``aws.endpoint_url`` at a
faster emulator (see README).
"""

from __future__ import annotations

import errno
import logging
import socket
from types import TracebackType
from typing import Any

from northmigrate.errors import ConfigError, InputError

DEFAULT_PORT = 4566


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
