"""The embedded AWS endpoint: moto's server (SQS, DynamoDB, S3, IAM, Lambda, CloudWatch…).

moto's SQS scans the whole queue on every call, so it suits queues of up to a few hundred
messages: the demo, tests, trying things out. For volume, point ``aws.endpoint_url`` at a
faster emulator (see README).

moto picks and marks the messages of a ReceiveMessage without a lock, so two receives at
the same moment (a worker has several receivers) could both be handed one message, or two
messages of one FIFO group; SQS never does that within a visibility timeout. The endpoint
makes each receive atomic (:func:`atomic_sqs_receives`), keeping long polling.

moto decides which FIFO groups are in flight from a snapshot it takes before it scans a
queue, and a message whose visibility has lapsed (or was set to 0 in the same millisecond
moto then read the clock) still counts in it. The scan skips the earlier messages of that
group, reaches the lapsed one, forgets it, and hands it out alone: ahead of the messages it
follows. SQS gives a group's messages out in order. The endpoint's receive forgets lapsed
messages before moto takes its snapshot, and reads the clock at one instant while it picks
(through :func:`prompt_sqs_clock`), so that none lapses halfway through moto's scan.

moto's DeleteMessage rebuilds a queue's list of messages from a copy and puts the copy
back, without a lock: two deletes at the same moment (a worker's acknowledgers) each put
back the message the other deleted, which SQS then delivers again once its visibility
timeout lapses, and a message sent meanwhile is lost. The endpoint makes every call that
changes a queue's messages (send, receive, delete, change visibility, purge) one step under
the receives' lock (:func:`atomic_sqs_writes`).

moto's DynamoDB checks a ConditionExpression and then writes, without a lock: two
conditional writes at the same moment can both pass (two ``attribute_not_exists`` creates
both succeed, the second overwriting the first; two compare-and-set increments both apply
to the same old value). DynamoDB never does that: a conditional write is atomic. The
endpoint serves one DynamoDB request at a time (:func:`atomic_dynamodb_requests`).

moto's SQS reads the clock through ``datetime``, about ten microseconds a time, twice for
every message of the queue each time it counts or picks them, several times a call. The
endpoint reads the same clock through ``time.time`` and remembers the attribute names it
converts (:func:`prompt_sqs_clock`): the same values, and with 400 messages in a queue its
CPU for a SendMessageBatch went from 74 to 7 ms, for a ReceiveMessage or a
DeleteMessageBatch from 106 to 11 ms.

These are patches of moto's internals, checked against the versions in ``MOTO_TESTED``
(pyproject's ``moto`` bound): each checks the shape of what it replaces and raises
:class:`MotoChanged` rather than patch something it does not know.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from northmigrate.errors import ConfigError, InputError

DEFAULT_PORT = 4566
MOTO_TESTED = (">=5.0.20", "<5.3")  # the moto versions these patches were checked against
_RECEIVE_PARAMETERS = (
    "self",
    "queue_name",
    "count",
    "wait_seconds_timeout",
    "visibility_timeout",
    "message_attribute_names",
)
# One call at a time changes a queue's messages: a receive picking its messages, a send, a
# delete, a change of visibility, a purge (a batch call may make several: reentrant).
_SQS_LOCK = threading.RLock()
_SQS_WRITES = (
    "send_message",
    "send_message_batch",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "purge_queue",
    "delete_queue",
)
_DYNAMODB_LOCK = threading.RLock()  # one DynamoDB request at a time
_PATCH_LOCK = threading.Lock()
_patched: set[str] = set()
_INSTANT = threading.local()  # .s: the one time a receive in progress on this thread reads


class MotoChanged(RuntimeError):
    """moto's internals are not what a patch of this module was written against."""


def _moto_changed(what: str) -> MotoChanged:
    import moto

    version = getattr(moto, "__version__", "?")
    return MotoChanged(
        f"moto {version} changed {what}: northmigrate.aws.local cannot make it atomic "
        f"(checked against moto {','.join(MOTO_TESTED)}); review the patch before use"
    )


def atomic_sqs_receives() -> None:
    """Make moto's SQS ReceiveMessage atomic in this process (idempotent).

    Each receive picks its messages under one lock; a long poll waits for messages outside
    it, checking again at least once a second, as moto's own long poll does. Before it picks,
    messages whose visibility has lapsed stop counting as in flight, so that a FIFO group
    comes out in order; with :func:`prompt_sqs_clock` (:func:`atomic_requests` makes both),
    the receive reads the clock at one instant, so that none lapses while moto scans.
    """
    with _PATCH_LOCK:
        if "sqs" in _patched:
            return
        from moto.sqs.models import Message, Queue, SQSBackend

        original = SQSBackend.receive_message
        try:
            parameters = tuple(inspect.signature(original).parameters)
        except (TypeError, ValueError):
            parameters = ()
        if parameters != _RECEIVE_PARAMETERS:
            raise _moto_changed(f"SQSBackend.receive_message{parameters}")
        if not callable(getattr(Queue, "wait_for_messages", None)):
            raise _moto_changed("sqs Queue.wait_for_messages")
        if not all(
            isinstance(getattr(Queue, name, None), property)
            for name in ("pending_messages", "pending_message_groups")
        ) or not isinstance(getattr(Message, "visible", None), property):
            raise _moto_changed("the in-flight messages of an sqs Queue")

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
                with _SQS_LOCK, _one_instant():
                    _forget_lapsed(self.get_queue(queue_name))
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

        receive_message.__wrapped__ = original  # type: ignore[attr-defined]
        SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
        _patched.add("sqs")


@contextlib.contextmanager
def _one_instant() -> Iterator[None]:
    """The prompt clock reads one time on this thread meanwhile: a receive picks its
    messages at one instant, as SQS does, and no visibility lapses halfway through moto's
    scan (which reads the clock for every message)."""
    _INSTANT.s = time.time()
    try:
        yield
    finally:
        _INSTANT.s = None


def _forget_lapsed(queue: Any) -> None:
    """Count no message as in flight whose visibility has lapsed (see the module docstring):
    what moto's own receive does, but before it takes its snapshot of the groups in flight."""
    pending = queue.pending_messages
    lapsed = [message for message in pending if message.visible]
    for message in lapsed:
        pending.discard(message)


def atomic_sqs_writes() -> None:
    """Make moto's SQS calls that change a queue's messages atomic in this process
    (idempotent): sends, deletes, changes of visibility and purges run under the lock the
    receives take (:func:`atomic_sqs_receives` makes the receives take it)."""
    with _PATCH_LOCK:
        if "sqs-writes" in _patched:
            return
        from moto.sqs.models import SQSBackend

        originals = {name: SQSBackend.__dict__.get(name) for name in _SQS_WRITES}
        missing = sorted(name for name, method in originals.items() if not callable(method))
        if missing:
            raise _moto_changed(f"SQSBackend ({', '.join(missing)} not found)")
        for name, original in originals.items():
            setattr(SQSBackend, name, _locked(original, _SQS_LOCK))
        _patched.add("sqs-writes")


def _locked(function: Any, lock: threading.RLock) -> Any:
    @functools.wraps(function)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return function(*args, **kwargs)

    return locked


def atomic_dynamodb_requests() -> None:
    """Make each of moto's DynamoDB requests atomic in this process (idempotent).

    Every DynamoDB request is served under one lock, from the parse of its parameters to its
    answer: a conditional write's check and its write are one step, and no read sees an item
    half-written (moto's UpdateItem first stores a bare key, then applies the update). moto's
    DynamoDB is in memory, so one request at a time costs little at the sizes moto suits.
    """
    with _PATCH_LOCK:
        if "dynamodb" in _patched:
            return
        from moto.dynamodb.responses import DynamoHandler

        original = DynamoHandler.__dict__.get("call_action")
        if not callable(original) or not all(
            callable(DynamoHandler.__dict__.get(action))
            for action in ("put_item", "update_item", "delete_item", "transact_write_items")
        ):
            raise _moto_changed("DynamoHandler.call_action and its item actions")

        DynamoHandler.call_action = _locked(original, _DYNAMODB_LOCK)  # type: ignore[method-assign]
        _patched.add("dynamodb")


def prompt_sqs_clock() -> None:
    """Make moto's SQS read the clock cheaply in this process (idempotent).

    ``unix_time()`` and ``unix_time_millis()`` without an argument give the seconds and
    milliseconds since the epoch from ``datetime.now`` minus the epoch's ``datetime``;
    ``time.time()`` gives the same value at a twentieth of the cost. During a receive of
    :func:`atomic_sqs_receives` they read the receive's one instant, on its thread. With an
    argument they are moto's own. ``camelcase_to_underscores`` (a pure function of an
    attribute's name) remembers its answers.
    """
    with _PATCH_LOCK:
        if "sqs-clock" in _patched:
            return
        from moto.core import utils
        from moto.sqs import models

        names = ("unix_time", "unix_time_millis", "camelcase_to_underscores")
        if any(getattr(models, name, None) is not getattr(utils, name, None) for name in names):
            raise _moto_changed("the clock and names of moto.sqs.models")
        unix_time, unix_time_millis = utils.unix_time, utils.unix_time_millis

        def now() -> float:
            instant: float | None = getattr(_INSTANT, "s", None)
            return time.time() if instant is None else instant

        def prompt_unix_time(dt: Any = None) -> float:
            return now() if dt is None else unix_time(dt)

        def prompt_unix_time_millis(dt: Any = None) -> float:
            return now() * 1000.0 if dt is None else unix_time_millis(dt)

        prompt = {
            "unix_time": prompt_unix_time,
            "unix_time_millis": prompt_unix_time_millis,
            "camelcase_to_underscores": functools.lru_cache(maxsize=1024)(
                utils.camelcase_to_underscores
            ),
        }
        for name, function in prompt.items():
            setattr(models, name, function)
        _patched.add("sqs-clock")


def atomic_requests() -> None:
    """Every patch: what the embedded endpoint (and the tests' in-process moto) run with."""
    prompt_sqs_clock()
    atomic_sqs_receives()
    atomic_sqs_writes()
    atomic_dynamodb_requests()


FREE, EMBEDDED, OTHER = "free", "embedded", "other"


def listener(host: str, port: int, timeout_s: float = 2.0) -> str:
    """Who listens on ``host:port``: nobody (``free``), an embedded endpoint (``embedded``:
    ``northmigrate local``, or moto's own server, which answers ``/moto-api/``), or another
    program (``other``: LocalStack, a web server, ...)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError:
        return FREE
    request = urllib.request.Request(f"http://{host}:{port}/moto-api/", method="HEAD")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with direct.open(request, timeout=timeout_s) as answer:
            return EMBEDDED if answer.status == 200 else OTHER
    except (OSError, ValueError):  # an HTTP error status, a reset, not HTTP at all
        return OTHER


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the system's choice)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


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
                        f"port {self.port} on {self.host} is already in use by another "
                        "program, not an embedded endpoint: a config pointing there would "
                        "use that program's queues",
                        hint="pass --port N, and point the config there (northmigrate init "
                        "--port N writes it)",
                    ) from exc
                raise InputError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
                ) from exc
        # werkzeug logs every request at INFO; only --debug (DEBUG on the root) shows them
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        atomic_requests()
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
