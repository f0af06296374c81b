"""Test support: a project directory wired to a real local endpoint; the CLI as a user runs it,
in this process (``Project.cli``) or as a process of its own (``Project.run``)."""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.session
import pytest

from northmigrate.aws.clients import share_service_models

REPO = Path(__file__).resolve().parents[1]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a CLI subprocess runs with: no stray config, fake credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORTHMIGRATE_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=str(REPO),
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.update(extra or {})
    return env


def signal_and_wait(
    process: subprocess.Popen[str], signum: int, timeout: float = 60
) -> tuple[str, str]:
    """Send ``signum`` and wait for the process to end; its stdout and stderr. One that does
    not end in time is killed (no process outlives its test) and the test fails."""
    process.send_signal(signum)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"signal {signum} did not stop {process.args}") from None


def start_local(stderr: int = subprocess.DEVNULL) -> tuple[subprocess.Popen[str], str]:
    """``northmigrate local --port 0`` as a process of its own, and its URL once it listens.
    moto logs every request on stderr: a pipe there must be read, or the server stalls."""
    process = subprocess.Popen(
        [sys.executable, "-m", "northmigrate", "local", "--port", "0"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError("northmigrate local did not start (run it by hand to see why)")
    return process, url


@dataclass(frozen=True)
class CliResult:
    """What a CLI run gave: its exit code and its output (the names of a CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        assert self.stdout.strip(), (
            f"no JSON on stdout; exit {self.returncode}; stderr:\n{self.stderr}"
        )
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data


def _stream(data: str = "") -> io.TextIOWrapper:
    """A text stream with a ``.buffer``, as sys.stdin/stdout/stderr have."""
    return io.TextIOWrapper(io.BytesIO(data.encode()), encoding="utf-8", write_through=True)


def _read(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", errors="replace")


@contextmanager
def cli_process_state(root: Path, env: dict[str, str]) -> Iterator[None]:
    """What a run of the CLI in this process may change, put back afterwards: the working
    directory, the environment (exactly ``env`` meanwhile), the root logger (the CLI's
    callback configures it), SIGINT/SIGTERM handlers, ``sys.path`` (the plugin's directory is
    added) and the plugin modules imported from ``root`` (another test's plugin of the same
    name must not be found in ``sys.modules``)."""
    cwd = os.getcwd()
    environ = dict(os.environ)
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    path = list(sys.path)
    bytecode = sys.dont_write_bytecode
    for handler in handlers:
        root_logger.removeHandler(handler)
    os.environ.clear()
    os.environ.update(env)
    sys.dont_write_bytecode = True  # a plugin rewritten within a second is read anew
    importlib.invalidate_caches()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        for handler in list(root_logger.handlers):
            root_logger.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root_logger.addHandler(handler)
        root_logger.setLevel(level)
        for sig, handler in signals.items():
            signal.signal(sig, handler)
        sys.path[:] = path
        sys.dont_write_bytecode = bytecode
        inside = str(root.resolve()) + os.sep
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None) or ""
            if where.startswith(inside) or where.startswith(str(root) + os.sep):
                del sys.modules[name]


def run_cli(
    root: Path, args: list[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> CliResult:
    """``northmigrate ARGS`` in this process, as ``python -m northmigrate`` would run it in
    ``root`` with ``cli_env(env)``: its exit code, stdout and stderr."""
    from northmigrate.cli.app import run

    stdin, stdout, stderr = _stream(input or ""), _stream(), _stream()
    saved = sys.stdin, sys.stdout, sys.stderr
    with cli_process_state(root, cli_env(env)):
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        try:
            code = run(list(args))
        except SystemExit as exc:  # what `python -m northmigrate` would exit with
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
    return CliResult(code, _read(stdout), _read(stderr))


def create_table(ddb: Any, name: str, key: str = "pk") -> None:
    """An on-demand table keyed on one string attribute ``key``."""
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def aws_client(service: str, **kwargs: Any) -> Any:
    """``boto3.client(service, **kwargs)`` on a session of its own that reads AWS's service
    models through the process's one loader (``northmigrate.aws.clients.share_service_models``), as
    the CLI's sessions do: moto's ``mock_aws`` drops boto3's default session, and a fresh
    one reads the models again, about 200 ms a test."""
    core = botocore.session.get_session()
    session = boto3.session.Session(botocore_session=core)
    share_service_models(core)
    return session.client(service, **kwargs)  # type: ignore[call-overload]


def client(service: str, endpoint: str) -> Any:
    return aws_client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3}),
        **CREDENTIALS,
    )


@dataclass
class Project:
    """A working directory with a northmigrate.toml naming unique queues and a unique table."""

    root: Path
    endpoint: str
    name: str = field(default_factory=lambda: f"nm-{uuid.uuid4().hex[:10]}")
    plugin: str = "northmigrate.examples.onboarding:migration"
    options: dict[str, Any] = field(default_factory=dict)
    queue_settings: dict[str, Any] = field(default_factory=dict)
    worker_settings: dict[str, Any] = field(default_factory=dict)
    # The guard stays off unless a test is about it: a test's scripted failures must not
    # trip it at random (tests/integration/test_night.py turns it on).
    guard_settings: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    fifo: bool = False

    def __post_init__(self) -> None:
        self.options.setdefault("table", f"{self.name}-target")
        self.write_config()

    @property
    def queue_name(self) -> str:
        return self.name + (".fifo" if self.fifo else "")

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq" + (".fifo" if self.fifo else "")

    @property
    def table(self) -> str:
        return str(self.options["table"])

    def write_config(self) -> Path:
        def toml_value(value: Any) -> str:
            return json.dumps(value)

        queue = {"name": self.queue_name, "max_receive_count": 3, "visibility_timeout": 10}
        queue.update(self.queue_settings)
        lines = [
            "[aws]",
            'region = "us-east-1"',
            f'endpoint_url = "{self.endpoint}"',
            "",
            "[queue]",
        ]
        lines += [f"{k} = {toml_value(v)}" for k, v in queue.items()]
        lines += ["", "[migration]", f'plugin = "{self.plugin}"', "", "[migration.options]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in self.options.items()]
        if self.worker_settings:
            lines += ["", "[worker]"] + [
                f"{k} = {toml_value(v)}" for k, v in self.worker_settings.items()
            ]
        if self.guard_settings:
            lines += ["", "[guard]"] + [
                f"{k} = {toml_value(v)}" for k, v in self.guard_settings.items()
            ]
        path = self.root / "northmigrate.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def write_plugin(self, module: str, code: str) -> str:
        """Write a plugin module into the project directory; returns its module name."""
        (self.root / f"{module}.py").write_text(textwrap.dedent(code))
        return module

    def cli(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> CliResult:
        """The CLI run in this process, in the project's directory (see ``run_cli``): for
        everything that does not need a process of its own (signals, kills, memory, runs in
        parallel)."""
        result = run_cli(self.root, list(args), input=input, env=env)
        if check and result.returncode != 0:
            raise AssertionError(
                f"northmigrate {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def cli_json(self, *args: str, **kwargs: Any) -> dict[str, Any]:
        """``cli(*args, "--output", "json")``'s JSON object."""
        return self.cli(*args, "--output", "json", **kwargs).json()

    def run(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """The CLI as a process of its own (``python -m northmigrate``): for what needs one
        (signals, a kill, its memory, an interpreter of its own); else ``cli``."""
        result = subprocess.run(
            [sys.executable, "-m", "northmigrate", *args],
            cwd=self.root,
            env=cli_env(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"northmigrate {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def run_json(self, *args: str, **kwargs: Any) -> dict[str, Any]:
        result = self.run(*args, "--output", "json", **kwargs)
        assert result.stdout.strip(), (
            f"no JSON on stdout; exit {result.returncode}; stderr:\n{result.stderr}"
        )
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "northmigrate", *args],
            cwd=self.root,
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # boto3 views of the same endpoint, for assertions
    def client(self, service: str) -> Any:
        return client(service, self.endpoint)

    def queue_url(self, name: str | None = None) -> str:
        return str(self.client("sqs").get_queue_url(QueueName=name or self.queue_name)["QueueUrl"])

    def drain(
        self, name: str | None = None, *, delete: bool = True, wait: float = 0
    ) -> list[dict[str, Any]]:
        """Every message of a queue (received until empty), deleted unless told otherwise."""
        sqs = self.client("sqs")
        url = self.queue_url(name)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while True:
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not got:
                if time.monotonic() >= deadline:
                    return out
                time.sleep(0.2)
                continue
            out.extend(got)
            if delete:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(got)
                    ],
                )

    def depth(self, name: str | None = None) -> dict[str, int]:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url(name),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"]),
        }

    def table_items(self) -> list[dict[str, Any]]:
        ddb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = ddb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def write_jsonl(path: Path, items: list[Any]) -> Path:
    """Write records (dicts) and raw lines (str) as JSONL."""
    with path.open("w") as out:
        for item in items:
            out.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return path


# Runs the CLI as `python -m northmigrate` does, then writes its peak RSS (VmHWM, kB) to a
# file. Not the child's ru_maxrss: a child's counts its parent's resident memory at the fork
# (Linux carries the old address space's high-water mark across exec), and the test process
# that forks it may hold far more than the CLI ever does.
_PEAK_RSS = """
import os, sys
from northmigrate.cli.app import run
code = run(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
with open(os.environ["PEAK_RSS_FILE"], "w") as out:
    out.write(peak)
sys.exit(code)
"""


def peak_rss_mb(project: Project, *args: str) -> tuple[float, dict[str, Any]]:
    """Run the CLI in a process of its own; its peak resident set size in MB (its own, not
    the test process's), and its JSON output."""
    out = project.root / "out.json"
    peak = project.root / "peak-rss-kb"
    with out.open("w") as stdout:
        process = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, *args, "--output", "json"],
            cwd=project.root,
            env=cli_env({"PEAK_RSS_FILE": str(peak)}),
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    assert process.returncode == 0, out.read_text()
    return int(peak.read_text()) / 1024, json.loads(out.read_text())


@contextmanager
def ministack_endpoint() -> Iterator[str]:
    """A ministack of its own (for a test module): its URL. Skips when ministack is not
    installed, or fails when ``NORTHMIGRATE_REQUIRE_MINISTACK`` is set (CI installs it)."""
    from support.emulators import start_ministack

    with start_ministack(executable=require_ministack()) as emulator:
        yield emulator.url


def require_ministack() -> str:
    """The ministack executable. Skips when it is not installed, or fails when
    ``NORTHMIGRATE_REQUIRE_MINISTACK`` is set (CI installs it)."""
    from support.emulators import find_ministack

    binary = find_ministack()
    if binary is None:
        if os.environ.get("NORTHMIGRATE_REQUIRE_MINISTACK"):
            pytest.fail("NORTHMIGRATE_REQUIRE_MINISTACK is set, but ministack is not installed")
        pytest.skip(
            "ministack is not installed: run `make ministack`, or set "
            "NORTHMIGRATE_MINISTACK=/path/to/bin/ministack"
        )
    return binary


def install_distribution(
    site: Path, name: str, version: str, files: dict[str, str], requires: list[str]
) -> None:
    """A distribution as pip leaves it in ``site`` (a directory on sys.path): its files, and a
    ``.dist-info`` with METADATA (``requires`` as Requires-Dist), top_level.txt and RECORD."""
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    (info / "METADATA").write_text("\n".join(lines + [f"Requires-Dist: {r}" for r in requires]))
    tops = sorted({Path(f).parts[0].removesuffix(".py") for f in files})
    (info / "top_level.txt").write_text("\n".join(tops) + "\n")
    record = [*files, f"{info.name}/METADATA", f"{info.name}/top_level.txt", "../../bin/acme"]
    (info / "RECORD").write_text("".join(f"{r},,\n" for r in [*record, f"{info.name}/RECORD"]))


def assert_every_record_migrated(project: Project, enqueued: int, wait: float = 600) -> None:
    """With no local worker running: wait (generously: a busy machine) until the main queue
    is drained, then every enqueued record is in the target and none in the DLQ."""
    deadline = time.monotonic() + wait
    while project.depth() != {"visible": 0, "in_flight": 0, "delayed": 0}:
        assert time.monotonic() < deadline, f"queue not drained: {project.depth()}"
        time.sleep(2)
    migrated = {item["application_id"]["S"] for item in project.table_items()}
    letters = project.drain(project.dlq_name)
    reasons = [m["MessageAttributes"].get("northmigrate.reason") for m in letters[:3]]
    assert not letters, f"{len(letters)} dead letters: {reasons}"
    assert len(migrated) == enqueued
