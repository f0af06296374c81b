"""A small TCP proxy that puts a distance between a client and an endpoint on loopback.

Every byte from the client reaches the endpoint ``delay_s`` after it arrived (a delay line:
a request that comes in several pieces is delayed once, not once a piece); answers come
back at once. So each request costs ``delay_s`` more, as a far endpoint's round trip does,
and requests on different connections overlap freely. Threads, no parsing: three threads a
connection, and the proxy's CPU is a few system calls a request (it runs in the benchmark's
parent process, outside every measured child).
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit


class LatencyProxy:
    def __init__(self, upstream_url: str, delay_s: float) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.delay_s = delay_s
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()

    def __enter__(self) -> LatencyProxy:
        threading.Thread(target=self._accept, name="latency-accept", daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line: collections.deque[tuple[float, bytes]] = collections.deque()
        ready = threading.Condition()
        threading.Thread(target=self._back, args=(upstream, client), daemon=True).start()
        threading.Thread(target=self._there, args=(line, ready, upstream), daemon=True).start()
        while True:  # this thread reads the client and stamps what it read
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            with ready:
                line.append((time.monotonic() + self.delay_s, data))
                ready.notify()
            if not data:
                return

    @staticmethod
    def _there(
        line: collections.deque[tuple[float, bytes]],
        ready: threading.Condition,
        upstream: socket.socket,
    ) -> None:
        """Forward each piece once its time has come."""
        while True:
            with ready:
                while not line:
                    ready.wait()
                due, data = line.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
            try:
                upstream.sendall(data)
            except OSError:
                return

    @staticmethod
    def _back(upstream: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                client.sendall(data)
            except OSError:
                break
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.close()
