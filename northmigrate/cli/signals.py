"""Stop cleanly: the first Ctrl-C (or SIGTERM) asks the work to stop, the second aborts."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from northmigrate.cli.output import say


@contextmanager
def graceful_stop(what: str) -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        say("[yellow]stopping: {} (Ctrl-C again to abort)[/yellow]", what)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
