"""Local AWS endpoints as subprocesses on a free loopback port, for tests and benchmarks.

``start_moto()`` runs moto's server (``python -m moto.server``), ``start_ministack()`` runs
ministack; each waits until the endpoint answers and returns an :class:`Emulator` that stops
it (terminate, then kill) on ``stop()`` or at the end of a ``with`` block. Their logs go to a
private temporary directory, never to an unread pipe (moto logs every request).

moto scans a whole SQS queue on every call, so it is slow beyond a few hundred messages;
ministack keeps up with thousands. ministack pins botocore exactly, so it lives in its own
virtual environment (``make ministack`` makes ``.venv-ministack``); ``find_ministack()``
finds it.

ministack and Lambda (checked against ministack 1.5.33)
-------------------------------------------------------
Yes: ministack runs Python (and Node.js) Lambda functions without Docker, as warm worker
subprocesses, and polls SQS event source mappings (``CreateEventSourceMapping`` on a queue
ARN) in a background thread. It invokes the function with standard ``{"Records": [...]}``
batches (up to 5 batches in flight per mapping by default, ``ScalingConfig.
MaximumConcurrency`` to change; 1 for FIFO), deletes a batch on success, honours
``FunctionResponseTypes: ["ReportBatchItemFailures"]`` and leaves failed messages invisible
for the queue's visibility timeout, so the queue's redrive policy dead-letters them after
``maxReceiveCount``. Tried: a zip with ``app.handler`` writing to DynamoDB, mapped to a
queue with a redrive policy: 96 of 100 records written, the 4 reported as
``batchItemFailures`` in the DLQ, within 6 s.

Caveats: the worker is ministack's own interpreter (``sys.executable`` of its venv, whatever
``Runtime`` says), and that venv has botocore (pinned) but *not boto3*: the zip must bundle
boto3 (and s3transfer); botocore then comes from ministack's venv unless bundled too. The
worker's environment is ministack's own environment, plus the function's
``Environment.Variables``, plus ``AWS_ENDPOINT_URL=http://127.0.0.1:GATEWAY_PORT`` unless
already set (hence ``start_ministack`` drops the caller's ``AWS_*`` variables).

The variables that decide it (read when ministack starts):

- ``LAMBDA_EXECUTOR``: ``local`` (the default) runs Zip functions as local processes;
  ``docker`` runs them in the AWS runtime-interface-emulator image.
- ``LAMBDA_STRICT=1`` forces Docker for every invocation (no local fallback): leave unset.
- ``Runtime`` of the function: ``python*``/``nodejs*`` run locally, ``provided*`` run a
  local bootstrap, ``java``/``dotnet``/``ruby`` and ``PackageType=Image`` need Docker.
- ``LAMBDA_WARM_TTL_SECONDS`` (default 300): how long an idle warm worker is kept.
- ``LAMBDA_ACCOUNT_CONCURRENCY`` and the function's reserved concurrency cap invocations.

``start_ministack`` sets ``LAMBDA_EXECUTOR=local`` and points ``DOCKER_HOST`` at a socket
that does not exist, so ministack never talks to a Docker daemon even where one runs; with
``TMPDIR``, ``S3_DATA_DIR`` and ``STATE_DIR`` in a private temporary directory (its PID file
and extracted code go there too) it writes nothing elsewhere. Readiness:
``GET /_ministack/health`` answers 200.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "Emulator",
    "find_ministack",
    "free_port",
    "repo_root",
    "start_ministack",
    "start_moto",
]

LOOPBACK = "127.0.0.1"
MINISTACK_HEALTH = "/_ministack/health"
MOTO_HEALTH = "/moto-api/data.json"
INSTALL_MINISTACK = (
    "install it in its own environment: `make ministack` (creates .venv-ministack), or "
    "`python -m venv /some/dir && /some/dir/bin/pip install ministack` and set "
    "NORTHMIGRATE_MINISTACK=/some/dir/bin/ministack"
)


class Emulator:
    """A running local AWS endpoint process; ``stop()`` ends it and removes its files."""

    def __init__(
        self,
        name: str,
        url: str,
        process: subprocess.Popen[bytes],
        workdir: Path,
        log: IO[bytes],
    ) -> None:
        self.name = name
        self.url = url
        self.process = process
        self.workdir = workdir
        self._log = log

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the process's log (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (kill it if it lingers) and remove its temporary files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"Emulator({self.name!r}, {self.url!r}, pid {self.process.pid}, {state})"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest directory containing pyproject.toml above ``start`` (this file)."""
    here = (start or Path(__file__)).resolve()
    for directory in here.parents:
        if (directory / "pyproject.toml").is_file():
            return directory
    return None


def find_ministack() -> str | None:
    """The ministack executable: ``$NORTHMIGRATE_MINISTACK`` if it names a file, else
    ``.venv-ministack/bin/ministack`` in the repository root, else None."""
    configured = os.environ.get("NORTHMIGRATE_MINISTACK")
    if configured and Path(configured).is_file():
        return configured
    root = repo_root()
    if root is not None:
        candidate = root / ".venv-ministack" / "bin" / "ministack"
        if candidate.is_file():
            return str(candidate)
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's environment without AWS or northmigrate settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NORTHMIGRATE_"))}
    env.update(extra or {})
    return env


def _launch(
    name: str,
    command: Callable[[int], list[str]],
    env: Callable[[int, Path], dict[str, str]],
    health_path: str,
    port: int | None,
    timeout: float,
) -> Emulator:
    """Start ``command(port)`` and wait for ``health_path`` to answer 200.

    With no port given, a free one is chosen, and chosen again (up to three times) if the
    process dies at once because another process took it in between.
    """
    attempts = 1 if port is not None else 3
    if port is not None and not _port_free(port):
        raise RuntimeError(f"{name}: port {port} on {LOOPBACK} is already in use")
    last_log = ""
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        workdir = Path(tempfile.mkdtemp(prefix=f"northmigrate-{name}-"))
        log = (workdir / f"{name}.log").open("wb")
        try:
            process = subprocess.Popen(
                command(chosen),
                cwd=workdir,
                env=env(chosen, workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            log.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        emulator = Emulator(name, f"http://{LOOPBACK}:{chosen}", process, workdir, log)
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if _http_ok(emulator.url + health_path) and process.poll() is None:
                    return emulator
                time.sleep(0.1)
        except BaseException:
            emulator.stop()
            raise
        last_log = emulator.log_tail()
        exited = process.poll()
        emulator.stop()
        if exited is None:
            raise RuntimeError(
                f"{name} did not answer {health_path} within {timeout:g} s; its log ends:\n"
                f"{last_log}"
            )
    raise RuntimeError(f"{name} exited during start-up; its log ends:\n{last_log}")


def start_moto(
    port: int | None = None,
    *,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Emulator:
    """moto's server (``python -m moto.server -H 127.0.0.1 -p PORT``), ready to answer.

    ``python`` is an interpreter with ``moto[server]`` installed.
    """

    def command(chosen: int) -> list[str]:
        return [python, "-m", "moto.server", "-H", LOOPBACK, "-p", str(chosen)]

    def environment(chosen: int, workdir: Path) -> dict[str, str]:
        return _clean_env({"TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1", **(env or {})})

    return _launch("moto", command, environment, MOTO_HEALTH, port, timeout)


def start_ministack(
    port: int | None = None,
    *,
    executable: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Emulator:
    """ministack (``find_ministack()`` unless ``executable`` is given), ready to answer.

    It binds 127.0.0.1 only, keeps every file in a private temporary directory, runs Lambda
    functions as local processes and never uses Docker; ``env`` adds to or overrides its
    environment (e.g. ``{"LOG_LEVEL": "DEBUG"}``).
    """
    binary = executable or find_ministack()
    if binary is None:
        raise RuntimeError(f"ministack is not installed: {INSTALL_MINISTACK}")
    if not Path(binary).is_file():
        raise RuntimeError(f"no ministack executable at {binary}: {INSTALL_MINISTACK}")

    def command(chosen: int) -> list[str]:
        return [binary]

    def environment(chosen: int, workdir: Path) -> dict[str, str]:
        return _clean_env(
            {
                "GATEWAY_PORT": str(chosen),
                "BIND_HOST": LOOPBACK,
                "TMPDIR": str(workdir),
                "S3_DATA_DIR": str(workdir / "s3"),
                "STATE_DIR": str(workdir / "state"),
                "PERSIST_STATE": "0",
                "S3_PERSIST": "0",
                "LAMBDA_EXECUTOR": "local",
                "DOCKER_HOST": f"unix://{workdir / 'no-docker.sock'}",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            }
        )

    return _launch("ministack", command, environment, MINISTACK_HEALTH, port, timeout)
