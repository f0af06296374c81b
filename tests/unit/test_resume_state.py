"""The resume state of a table scan: private on disk, no sensitive key value or filter in it.

A table keyed by a sensitive attribute (``tax_id``, an SSN) is scanned, the run "crashes"
part-way, and a second run resumes: every item is sent at least once, none is skipped, and
the state file never holds a tax id or the filter's text.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from northmigrate import enqueue
from northmigrate.aws.clients import AwsClients
from northmigrate.config import AwsSettings
from northmigrate.errors import InputError
from northmigrate.plugin import Migration
from northmigrate.sources import ScanOptions, open_source
from northmigrate.sources.resume import ScanCheckpoint, ScanState
from northmigrate.sources.resume_key import ResumeKey, key_file

TABLE = "people"
TAX_IDS = [f"{100 + n:03d}-{n % 90 + 10:02d}-{1000 + n * 7:04d}" for n in range(1, 61)]


class Row(BaseModel):
    id: str
    tax_id: str
    status: str


ROWS = Migration(
    name="rows", model=Row, key="id", handler=lambda record, ctx: None, sensitive=("tax_id",)
)


@pytest.fixture(autouse=True)
def own_key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The resume key lives in the user's config directory: here, one of the test's own."""
    config = tmp_path / "config-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def clients(mocked_aws: None) -> AwsClients:
    return AwsClients(AwsSettings(region="us-east-1"))


def make_table(clients: AwsClients) -> dict[str, str]:
    """A table keyed by tax_id alone (an SSN-like value); {record id: tax id}."""
    ddb = clients.session.resource("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "tax_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "tax_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rows = {f"R-{n:03d}": tax for n, tax in enumerate(TAX_IDS, 1)}
    with ddb.Table(TABLE).batch_writer() as batch:
        for n, (record_id, tax) in enumerate(rows.items()):
            status = "approved" if n % 3 else "draft"
            batch.put_item(Item={"tax_id": tax, "id": record_id, "status": status})
    return rows


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def crash_part_way(clients: AwsClients, path: Path, **options: Any) -> set[str]:
    """Read 25 items of a 3-segment scan, confirming all but every segment's second page,
    then stop as a crash would: the ids that were confirmed sent."""
    source = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=clients,
        options=ScanOptions(segments=3, state_file=path, sensitive=("tax_id",), **options),
    )
    sent: set[str] = set()
    for n, item in enumerate(source):
        if n == 25:
            break
        if item.token.page != 1:
            source.settle(item, True)
            sent.add(item.data["id"])
    source.close()
    return sent


def test_state_file_is_0600_in_a_0700_directory(clients: AwsClients, tmp_path: Path) -> None:
    make_table(clients)
    base = tmp_path / "work" / ".northmigrate" / "resume"
    path = base / "state.json"
    crash_part_way(clients, path)
    assert mode(path) == 0o600
    assert mode(base) == 0o700 and mode(base.parent) == 0o700
    assert sorted(p.name for p in base.iterdir()) == ["state.json"]  # no temporary file left


def test_no_sensitive_key_value_or_filter_text_is_stored(
    clients: AwsClients, tmp_path: Path
) -> None:
    make_table(clients)
    path = tmp_path / "state.json"
    crash_part_way(clients, path, filters=("#status = :v",), filter_values='{":v": "approved"}')
    state = ScanState.load(path)
    assert state is not None and any(s.start_digest for s in state.segments)  # it did move
    data = path.read_bytes()
    for tax in TAX_IDS:
        assert tax.encode() not in data
        assert tax.replace("-", "").encode() not in data
    assert (
        b"approved" not in data
        and b"#status" not in data
        and b"status" not in data
        and b":v" not in data
    )
    key = key_file()
    assert key.is_file() and mode(key) == 0o600 and mode(key.parent) == 0o700
    assert key.read_bytes().strip().hex() not in data.decode()  # the secret stays out too


def test_a_crash_then_resume_sends_every_item_at_least_once(
    clients: AwsClients, tmp_path: Path
) -> None:
    rows = make_table(clients)
    path = tmp_path / "state.json"
    sent = crash_part_way(clients, path)
    assert sent and len(sent) < len(rows)
    sqs = clients.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    second = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=clients,
        options=ScanOptions(state_file=path, resume=True, sensitive=("tax_id",)),
    )
    info = second.resume_info()
    assert info is not None and info["resumed"] is True
    report = enqueue.run(
        second,
        ROWS,
        max_message_size=262_144,
        sqs=sqs,
        queue_url=url,
        settled=second.settle,
    )
    second.close()
    assert report.complete and report.failed == 0
    queued = drain(sqs, url)
    assert sent | set(queued) == set(rows)  # nothing skipped
    assert len(queued) < len(rows)  # it did resume: confirmed pages were not sent again
    state = ScanState.load(path)
    assert state is not None and state.finished


def test_a_position_whose_item_was_deleted_sends_its_segment_again(
    clients: AwsClients, tmp_path: Path
) -> None:
    rows = make_table(clients)
    path = tmp_path / "state.json"
    sent = crash_part_way(clients, path)
    state = ScanState.load(path)
    assert state is not None
    saved = {s.start_digest for s in state.segments if s.start_digest}
    assert saved
    # delete the items the positions name: no digest can be found again
    table = clients.session.resource("dynamodb").Table(TABLE)
    deleted = set()
    for record_id, tax in rows.items():
        if state.position_digest({"tax_id": {"S": tax}}) in saved:
            table.delete_item(Key={"tax_id": tax})
            deleted.add(record_id)
    assert len(deleted) == len(saved)
    second = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=clients,
        options=ScanOptions(state_file=path, resume=True, sensitive=("tax_id",)),
    )
    rest = {item.data["id"] for item in second}
    second.close()
    assert set(rows) - deleted - sent <= rest  # every item not proven sent comes again
    assert rest & sent  # the segments whose position is gone were sent again, whole


def test_the_position_is_found_again_by_its_digest(tmp_path: Path) -> None:
    key = ResumeKey(b"k" * 32)
    state = ScanState(table="t", queue="q", total_segments=1, sensitive=frozenset({"ssn"}))
    state.key = key
    path = tmp_path / "s.json"
    cp = ScanCheckpoint(state, path)
    position = {"ssn": {"S": "123-45-6789"}}
    cp.settle(cp.page_read(0, 0, 1, position, 1), True)
    saved = ScanState.load(path, key=key)
    assert saved is not None and saved.segments[0].start_key is None
    assert saved.segments[0].start_digest
    assert b"6789" not in path.read_bytes()
    pages: list[dict[str, Any]] = [
        {
            "Items": [{"ssn": {"S": "000-00-0001"}}],
            "LastEvaluatedKey": {"ssn": {"S": "000-00-0001"}},
        },
        {"Items": [{"ssn": {"S": "555-55-5555"}}, position], "LastEvaluatedKey": position},
        {"Items": [{"ssn": {"S": "999-99-9999"}}]},
    ]
    starts: list[Any] = []

    def read_page(start: Any) -> dict[str, Any]:
        starts.append(start)
        return pages[len(starts) - 1]

    assert saved.locate(0, read_page) == position
    assert starts == [None, {"ssn": {"S": "000-00-0001"}}]
    # not found anywhere (the item was deleted): the segment starts over
    starts.clear()
    pages[1] = {"Items": [], "LastEvaluatedKey": {"ssn": {"S": "555-55-5555"}}}
    assert saved.locate(0, read_page) is None
    # a position that is not sensitive is kept in clear, and needs no seeking
    plain = ScanState(table="t", queue="q", total_segments=1)
    ScanCheckpoint(plain, tmp_path / "p.json").page_read(0, 0, 0, {"pk": {"S": "a"}}, 1)
    again = ScanState.load(tmp_path / "p.json")
    assert again is not None and again.segments[0].start_key == {"pk": {"S": "a"}}
    assert again.locate(0, read_page) == {"pk": {"S": "a"}}


def test_resume_refuses_another_filter_another_value_or_another_key(
    clients: AwsClients, tmp_path: Path, own_key_dir: Path
) -> None:
    make_table(clients)
    path = tmp_path / "state.json"
    crash_part_way(clients, path, filters=("#status = :v",), filter_values='{":v": "approved"}')

    def resume(**options: Any) -> Any:
        return open_source(
            f"dynamodb://{TABLE}",
            clients=clients,
            options=ScanOptions(state_file=path, resume=True, sensitive=("tax_id",), **options),
        )

    same = resume(filters=("#status = :v",), filter_values='{":v": "approved"}')
    same.close()
    others: list[dict[str, Any]] = [
        {"filters": ["#status = :v"], "filter_values": '{":v": "draft"}'},
        {"filters": ["status=approved"]},
        {},
    ]
    for options in others:
        with pytest.raises(InputError, match="--filter") as caught:
            resume(**options)
        assert "approved" not in str(caught.value) and "draft" not in str(caught.value)
    os.replace(key_file(), own_key_dir / "moved-away.key")
    with pytest.raises(InputError, match="resume key") as caught:
        resume(filters=("#status = :v",), filter_values='{":v": "approved"}')
    assert str(key_file()) in str(caught.value)


def test_a_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    base = tmp_path / "resume"
    base.mkdir()
    path = base / "state.json"
    path.symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        ScanState.load(path)
    ScanState(table="t", queue="q", total_segments=1).save(path)
    assert victim.read_text() == "keep me\n"
    assert not path.is_symlink() and mode(path) == 0o600
    linked = tmp_path / "linked"
    linked.symlink_to(base)
    with pytest.raises(InputError, match="symbolic link"):
        ScanState(table="t", queue="q", total_segments=1).save(linked / "state.json")


def test_a_version_1_state_still_resumes_and_is_rewritten_private(
    clients: AwsClients, tmp_path: Path
) -> None:
    rows = make_table(clients)
    path = tmp_path / "state.json"
    old = {
        "version": 1,
        "table": TABLE,
        "queue": "",
        "total_segments": 1,
        "filter": "status=approved",
        "consistent": False,
        "finished": False,
        "segments": [{"segment": 0, "done": False, "scanned": 4, "start_key": None}],
    }
    path.write_text(json.dumps(old))
    path.chmod(0o644)
    with pytest.raises(InputError, match="--filter"):
        open_source(
            f"dynamodb://{TABLE}",
            clients=clients,
            options=ScanOptions(state_file=path, resume=True),
        )
    second = open_source(
        f"dynamodb://{TABLE}?page_size=4",
        clients=clients,
        options=ScanOptions(
            state_file=path, resume=True, filters=("status=approved",), sensitive=("tax_id",)
        ),
    )
    got = [item for item in second]
    for item in got:
        second.settle(item, True)
    second.close()
    assert {i.data["id"] for i in got} <= set(rows) and got
    data = path.read_bytes()
    assert mode(path) == 0o600 and b"approved" not in data
    assert json.loads(data)["version"] == 2


def drain(sqs: Any, url: str) -> list[str]:
    ids: list[str] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return ids
        for message in batch:
            ids.append(json.loads(message["Body"])["record_id"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
