"""``dlq redrive --max``: how many messages a run may still move, reserved by its threads
before they receive; one count per run, shared by the processes of ``--processes N``."""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager
from typing import Any, Protocol


class SharedMax(Protocol):
    """The counts of one ``--max`` shared by several processes (``[done, reserved]`` with a
    lock across them: a ``multiprocessing`` array, :mod:`northmigrate.dlq.processes`)."""

    def __getitem__(self, index: int, /) -> int: ...

    def __setitem__(self, index: int, value: int, /) -> None: ...

    def get_lock(self) -> AbstractContextManager[Any]: ...


class Budget:
    """``--max``: messages reserved by the threads before they receive, committed when they
    are moved (or matched, in a dry run), given back otherwise. Never over the limit.

    With ``shared`` the counts are those of every process of one run, under the array's
    lock: a process that moves faster takes more of the limit, and together they never pass
    it. A thread waits only for the reservations of its own process: with nothing left
    free and none of its own reserved, its process is done (what another process reserved
    and gives back, that process takes again).
    """

    def __init__(self, limit: int | None, shared: SharedMax | None = None) -> None:
        self.limit = limit
        self._counts: SharedMax | list[int] = shared if shared is not None else [0, 0]
        self._shared: AbstractContextManager[Any] = (
            shared.get_lock() if shared is not None else contextlib.nullcontext()
        )
        self.mine = 0  # reserved by this process's threads
        self._cond = threading.Condition()

    def reserve(self, n: int, stop: threading.Event) -> int:
        with self._cond:
            while True:
                if self.limit is None:
                    return n
                with self._shared:
                    done, reserved = self._counts[0], self._counts[1]
                    free = self.limit - done - reserved
                    if free > 0:
                        got = min(n, free)
                        self._counts[1] = reserved + got
                        self.mine += got
                        return got
                if self.mine == 0 or stop.is_set():
                    return 0
                self._cond.wait(0.1)  # others may give theirs back

    def settle(self, reserved: int, used: int) -> None:
        if self.limit is None:
            return
        with self._cond:
            with self._shared:
                self._counts[1] -= reserved
                self._counts[0] += used
            self.mine -= reserved
            self._cond.notify_all()

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self._counts[0] >= self.limit


__all__ = ["Budget", "SharedMax"]
