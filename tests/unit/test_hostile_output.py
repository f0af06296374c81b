"""Hostile output: whatever the data holds, it reaches the terminal as text.

Record ids, reasons, field values, bodies, file and queue names may hold rich markup
(``[/]``, ``[link=…]``) or terminal control (ESC sequences, C1 controls, BEL, backspace,
carriage return, bidi overrides). Every table and line a command prints shows them as text:
markup is not interpreted, control characters are written escaped (``\\x1b``, ``\\r``,
``\\u202e``); nothing raises, so a run that did its work never ends with exit 70. JSON
output keeps the exact strings. Each command runs in-process on moto's ``mock_aws``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import aws_client

from northmigrate.cli import output
from northmigrate.cli.app import run
from northmigrate.records import envelope

# (hostile text, how it must show on the terminal)
HOSTILE = [
    ("[/]", "[/]"),
    ("[link=https://evil.example/]click[/link]", "[link=https://evil.example/]click[/link]"),
    ("[bold]x", "[bold]x"),
    ("x[/bold]", "x[/bold]"),
    ("tail\\", "tail\\"),
    (":smile:", ":smile:"),
    (
        "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
        "\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07",
    ),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("\x1b[2J", "\\x1b[2J"),
    ("a\rb", "a\\rb"),
    ("a\nb", "a\\nb"),
    ("\x07", "\\x07"),
    ("\x08", "\\x08"),
    ("x\u202ey", "x\\u202ey"),
    ("\u2066x\u2069", "\\u2066x\\u2069"),
    ("\x9b31m", "\\x9b31m"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("[/]" * 700, "[/]" * 700),
    ("\x1b[2J" * 500, "\\x1b[2J" * 500),
    ("", ""),
]
CASES = [pytest.param(text, shown, id=repr(text)[:40]) for text, shown in HOSTILE]
# what must never reach a terminal from data: C0 controls but newline, DEL, C1, bidi controls
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

PLUGIN = """
from pydantic import BaseModel, ConfigDict
from northmigrate import Migration, PermanentError

class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    note: str = ""
    n: int = 0

def handle(record, ctx):
    raise PermanentError(f"<{record.note}>")  # a reason loses a trailing ":"

migration = Migration(
    name="hostile", model=Record, key="id", handler=handle, verify=lambda record, ctx: False
)
"""


@dataclass
class Project:
    root: Path
    sqs: Any
    capsys: pytest.CaptureFixture[str]
    queue: str = "hostile"

    @property
    def dlq(self) -> str:
        return f"{self.queue}-dlq"

    def write_config(self, queue: str | None = None) -> None:
        name = json.dumps(queue or self.queue)
        (self.root / "northmigrate.toml").write_text(
            textwrap.dedent(f"""\
                [aws]
                region = "us-east-1"

                [queue]
                name = {name}
                max_receive_count = 3
                visibility_timeout = 30

                [migration]
                plugin = "nm_hostile_plugin:migration"

                [deploy]
                arch = "host"
            """)
        )

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = run(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def records(self, texts: list[str], name: str = "records.jsonl") -> Path:
        """A source whose rejected lines, valid records and ids hold each of ``texts``."""
        rows: list[dict[str, Any]] = []
        for text in texts:
            rows += [
                {"id": text, "n": text},  # invalid: n is not a number
                {"id": f"{text}-extra", text or "empty": 1},  # invalid: a field named ``text``
                {"id": f"{text}-ok", "note": text},  # valid
            ]
        path = self.root / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    def dead_letters(self, texts: list[str]) -> None:
        """Dead letters whose record id, reason, fields and raw body hold each of ``texts``."""
        url = self.url(self.dlq)
        for text in texts:
            record = {"id": text, "note": text}
            reason = {"DataType": "String", "StringValue": f"PermanentError: {text}"}
            kind = {"DataType": "String", "StringValue": "permanent"}
            attrs = {envelope.ATTR_REASON: reason, envelope.ATTR_FAILURE_KIND: kind}
            body = envelope.Envelope("hostile", text, record, run_id="run-1").to_body()
            self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs)
            self.sqs.send_message(QueueUrl=url, MessageBody=f"raw {text}")
            self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": text}))

    def queued(self, texts: list[str]) -> None:
        """Messages in the main queue that the plugin dead-letters with each text as reason."""
        for text in texts:
            body = envelope.Envelope("hostile", text, {"id": text, "note": text}, run_id="r")
            self.sqs.send_message(QueueUrl=self.url(self.queue), MessageBody=body.to_body())


@pytest.fixture
def project(
    mocked_aws: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Project]:
    monkeypatch.chdir(tmp_path)
    for name in ("NORTHMIGRATE_CONFIG", "NORTHMIGRATE_OUTPUT", "FORCE_COLOR", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "20000")  # long values stay on one line of their cell
    (tmp_path / "nm_hostile_plugin.py").write_text(PLUGIN)
    sqs = aws_client("sqs", region_name="us-east-1")
    project = Project(tmp_path, sqs, capsys)
    project.write_config()
    code, _, err = project.run("provision")
    assert code == 0, err
    yield project


def assert_shown(out: str, err: str, shown: list[str]) -> None:
    for stream in (out, err):
        found = RAW.search(stream)
        assert found is None, f"raw {found.group()!r} reached the terminal: {stream[:300]!r}"
    for text in shown:  # long ids and reasons are cut short: their start is enough
        assert text[:150] in out + err, f"{text[:80]!r} is not shown: {(out + err)[:2000]!r}"


def run_command(project: Project, texts: list[str], command: str) -> tuple[int, str, str]:
    """Put ``texts`` where ``command`` shows data, run it; (exit code, stdout, stderr)."""
    if command in {"validate", "enqueue", "reconcile"}:
        source = project.records(texts)
        if command == "reconcile":
            project.dead_letters(texts)
        return project.run(command, str(source))
    if command == "worker":
        project.queued(texts)
        return project.run("worker", "--until-empty", "--concurrency", "2")
    project.dead_letters(texts)
    argv = {
        "dlq redrive": ["dlq", "redrive"],
        "dlq redrive --dry-run": ["dlq", "redrive", "--dry-run", "--where", "reason~Perm"],
        "dlq inspect": ["dlq", "inspect", "--show-pii", "--long", "--limit", "100"],
        "dlq watch": ["dlq", "watch", "--once"],
        "status": ["status", "--once"],
    }
    return project.run(*argv[command])


# command -> (exit code, whether each hostile text itself appears in what it prints)
COMMANDS = {
    "validate": (0, True),
    "enqueue": (0, True),
    "dlq inspect": (0, True),
    "dlq redrive": (0, False),
    "dlq redrive --dry-run": (0, False),
    "dlq watch": (1, False),
    "status": (0, False),
    "reconcile": (1, True),
    "worker": (0, True),
}
# tables show the 10 most common reasons, the first 20 missing ids: a few texts at a time
CHUNKS = [HOSTILE[i : i + 8] for i in range(0, len(HOSTILE), 8)]


@pytest.mark.parametrize("chunk", CHUNKS, ids=[f"hostile{i}" for i in range(len(CHUNKS))])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_table_shows_hostile_data_as_text(
    project: Project, command: str, chunk: list[tuple[str, str]]
) -> None:
    code, out, err = run_command(project, [text for text, _ in chunk], command)
    expected_code, appears = COMMANDS[command]
    assert code == expected_code, err
    assert "Error" not in err and "Traceback" not in err, err
    assert_shown(out, err, [shown for _, shown in chunk] if appears else [])


@pytest.mark.parametrize("command", ["validate", "enqueue", "dlq inspect", "reconcile"])
def test_json_output_keeps_the_exact_strings(project: Project, command: str) -> None:
    texts = [text for text, _ in HOSTILE]
    if command in {"validate", "enqueue", "reconcile"}:
        source = project.records(texts)
        code, out, err = project.run(command, str(source), "--output", "json")
        data = json.loads(out)
        if command == "reconcile":
            assert set(data["missing"]) == {f"{text}-ok" for text in texts}
        else:
            ids = {e["record_id"] for e in data["errors"]}  # ids of bad lines: 200 characters
            assert ids == {t[:200] for t in texts} | {f"{t}-extra"[:200] for t in texts}
            assert {e["field"] for e in data["errors"]} >= {t for t in texts if t}
    else:
        project.dead_letters(texts)
        code, out, err = project.run("dlq", "inspect", "--show-pii", "-n", "100", "-o", "json")
        data = json.loads(out)
        assert {r["reason"] for r in data["reasons"]} >= {f"PermanentError: {t}" for t in texts}
        assert {m["record_id"] for m in data["messages"]} >= set(texts)
    assert code in (0, 1), err
    assert out.count("\n") == 1  # one JSON object


@pytest.mark.parametrize("command", ["validate", "dlq inspect", "reconcile", "worker"])
def test_on_a_terminal_data_sends_no_control_sequence(
    project: Project, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich writes its own styles: data must not
    code, out, err = run_command(project, [text for text, _ in HOSTILE], command)
    assert code in (0, 1), err
    assert "\x1b[" in out  # styled: this is what a terminal gets
    for stream in (out, err):
        assert not re.search("\x1b\\]8;[^\x1b\x07]*evil", stream)  # no link to evil
        assert "\x1b[2J" not in stream and "\x1b[31mred" not in stream
        assert not re.search("[\x07\x08\r\x80-\x9f\u202a-\u202e\u2066-\u2069]", stream)


def test_a_lone_surrogate_is_shown_escaped(project: Project) -> None:
    # valid JSON ("\\ud800"), but no terminal encoding can write it: it would raise there
    letter = envelope.Envelope("hostile", "\ud800", {"id": "\ud800"}, run_id="r").to_dict()
    body = json.dumps(letter)  # ASCII: the surrogate travels as an escape
    project.sqs.send_message(QueueUrl=project.url(project.dlq), MessageBody=body)
    code, out, err = project.run("dlq", "inspect", "--show-pii", "--long")
    assert code == 0, err
    assert "\\ud800" in out and "\ud800" not in out + err


# -- names that come from the command line and the config -------------------------------


FILE_NAMES = [t for t, _ in HOSTILE if t and "/" not in t and "\x00" not in t and len(t) < 200]


@pytest.mark.parametrize("command", ["validate", "enqueue", "doctor"])
def test_file_names_show_as_text(project: Project, command: str) -> None:
    for text in FILE_NAMES:  # one endpoint for all the names: each is a file of its own
        source = project.records(["r"], name=f"{text}.jsonl")
        if command == "doctor":
            code, out, err = project.run("doctor", "--source", str(source))
        else:
            code, out, err = project.run(command, str(source))
        assert code in (0, 1), (text, err)
        shown = dict(HOSTILE)[text]
        assert_shown(out, err, [f"{shown}.jsonl"])


def test_an_error_line_shows_data_as_text(project: Project) -> None:
    code, out, err = project.run("validate", "no\x1b[2Jsuch\n[/].jsonl")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert_shown(out, err, ["no\\x1b[2Jsuch\\n[/].jsonl"])
    code, out, err = project.run("--debug", "validate", "no\x1b[2Jsuch\n[/].jsonl")
    assert code == 2 and "Traceback" in err  # the traceback keeps its lines, data escaped
    assert_shown(out, err, ["no\\x1b[2Jsuch\\n[/].jsonl"])


CONFIG_COMMANDS = [
    ["provision"],
    ["status", "--once"],
    ["dlq", "inspect"],
    ["dlq", "redrive"],
    ["dlq", "watch", "--once"],
    ["enqueue", "records.jsonl"],
    ["worker", "--until-empty"],
    ["doctor"],
    ["tap", "status"],
    ["cutover", "status", "--once"],
    ["deploy", "--dry-run"],
    ["destroy"],
]


QUEUE_NAMES = ["q\x1b[2J[/]", "q[link=https://evil.example/]x", "q\u202e\x9b\x07"]


@pytest.mark.parametrize("argv", CONFIG_COMMANDS, ids=" ".join)
def test_queue_names_from_the_config_show_as_text(project: Project, argv: list[str]) -> None:
    project.records(["r"])
    for queue in QUEUE_NAMES:
        project.write_config(queue)
        code, out, err = project.run(*argv)
        assert code != 70, (queue, err)
        assert RAW.search(out + err) is None, (queue, (out + err)[:500])
        if argv[0] != "destroy":  # destroy names the function, of the name's safe characters
            assert output.plain(queue) in out + err  # in a table or in the one Error: line


# -- the helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_plain_makes_control_characters_visible(text: str, shown: str) -> None:
    assert output.plain(text) == shown
    assert output.shown(text).plain == shown
    assert output.markup("[red]<{}>[/red]", text).plain == f"<{shown}>"


def test_plain_keeps_ordinary_text_and_joiners() -> None:
    for text in ["Café Zoë", "東京", "👩\u200d💻", "كتاب", "a\u00a0b", "C:\\path\\x1b", "100%"]:
        assert output.plain(text) == text
    assert output.plain(12) == "12" and output.plain(None) == "None"
    assert output.plain("\ud800") == "\\ud800"  # a lone surrogate cannot be written as UTF-8


def test_markup_fills_slots_with_text_in_the_style_of_the_place() -> None:
    line = output.markup("[red]<{}>[/red] [bold]{}[/bold]", "tail\\", "[/bold]x")
    assert line.plain == "<tail\\> [/bold]x"
    assert {(line.plain[s.start : s.end], str(s.style)) for s in line.spans} >= {
        ("tail\\", "red"),
        ("[/bold]x", "bold"),
    }
    with pytest.raises(ValueError, match="2 slots for 1 values"):
        output.markup("{} {}", "a")


def test_say_never_fails_on_data_put_into_its_template(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.say("[red]wrote {}[/red]", "[/]\x1b[2J")
    data = "[/] {}"
    output.say(f"wrote {data}")  # data formatted into the template: text, not a crash
    err = capsys.readouterr().err
    assert err.splitlines() == ["wrote [/]\\x1b[2J", "wrote [/] {}"]


def test_log_lines_show_data_as_text() -> None:
    formatter = output.PlainFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad \x1b[2J value")
    except ValueError:
        record = logging.LogRecord(
            "nm",
            logging.WARNING,
            __file__,
            1,
            "reason %s",
            ("\x1b]8;;x\x07\u202e",),
            sys.exc_info(),
        )
    text = formatter.format(record)
    assert text.startswith("WARNING reason \\x1b]8;;x\\x07\\u202e\nTraceback")
    assert "ValueError: bad \\x1b[2J value" in text
    assert RAW.search(text) is None


def test_a_table_that_cannot_render_still_gives_the_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(console: Any) -> None:
        raise ValueError("cannot render this")

    output.emit(output.OutputFormat.table, {"moved": 3}, broken)
    out, err = capsys.readouterr()
    assert json.loads(out) == {"moved": 3}
    assert "could not show the table" in err and "cannot render this" in err


def test_the_package_listing_shows_names_and_requirements_as_text() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from northmigrate.cli.deploy import _package_listing

    package: Any = SimpleNamespace(
        files=3,
        platform="[bold]host",
        plugin_distribution="acme[x]",
        plugin_requirements=["requests[socks]==2.32.3"],
        plugin_files=["acme/[/]odd.py"],
        requirements=["pydantic[email]==2.9.2", "\x1b[2Jclear"],
    )
    console = Console(record=True, width=300, force_terminal=False)
    _package_listing(console, package)
    out = console.export_text()
    for text in ("[bold]host", "acme[x]", "requests[socks]==2.32.3", "acme/[/]odd.py"):
        assert text in out, out
    assert "pydantic[email]==2.9.2" in out and "\x1b" not in out, out
