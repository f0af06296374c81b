from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from northmigrate.errors import PluginError
from northmigrate.plugin import load_migration
from northmigrate.records import envelope
from northmigrate.redact import MASK, redact, scrub, sensitive_values


def test_redact_walks_nested_objects_and_lists() -> None:
    record = {
        "id": "A1",
        "owners": [
            {"name": "Ana", "tax_id": "900-12-3456"},
            {"name": "Bo", "tax_id": "900-65-4321"},
        ],
        "contact": {"email": "a@example.com", "city": "Toronto"},
        "business": None,
    }
    out = redact(record, ["owners.tax_id", "contact.email", "business.ein", "missing.path"])
    assert out["owners"] == [{"name": "Ana", "tax_id": MASK}, {"name": "Bo", "tax_id": MASK}]
    assert out["contact"] == {"email": MASK, "city": "Toronto"}
    assert out["business"] is None
    assert record["owners"][0]["tax_id"] == "900-12-3456"  # the original is untouched


def test_redact_whole_subtree_and_scrub_text() -> None:
    record = {"owner": {"dob": "1980-01-02", "ssn": "900-11-2222"}, "id": "X"}
    assert redact(record, ["owner", "owner.ssn"])["owner"] == MASK
    values = sensitive_values(record, ["owner"])
    assert values == {"1980-01-02", "900-11-2222"}
    text = "bad dob 1980-01-02 for 900-11-2222 (X)"
    assert scrub(text, values) == f"bad dob {MASK} for {MASK} (X)"


def test_envelope_round_trip_and_raw_body() -> None:
    body = envelope.BodyWriter("m", "r", "t").body("R1", "s", 3, '{"a": [1, 2]}')
    parsed = envelope.parse(body)
    assert parsed.record == {"a": [1, 2]} and parsed.line == 3 and parsed.record_id == "R1"
    parsed.failures.append(
        envelope.failure(
            kind="permanent", error_class="E", reason="E: x", attempt=1, migration="m", version="1"
        )
    )
    again = envelope.parse(parsed.to_body())
    assert again.last_failure is not None and again.last_failure["reason"] == "E: x"


@given(
    migration=st.text(),
    run_id=st.text(),
    record_ids=st.lists(st.text(), min_size=1, max_size=3),
    sources=st.lists(st.text(max_size=5), min_size=1, max_size=3),
    line=st.none() | st.integers(min_value=0),
)
def test_the_fast_body_writer_writes_the_same_bytes_as_an_envelope(
    migration: str, run_id: str, record_ids: list[str], sources: list[str], line: int | None
) -> None:
    writer = envelope.BodyWriter(migration, run_id, "2026-11-27T01:02:03.000000Z")
    for record_id in record_ids:
        for source in sources:  # the source name changes within a run (S3 objects)
            raw = '{"k":"é \\"q\\"","n":[1,2.5,null]}'  # compact: to_body writes it so
            fresh = envelope.Envelope(
                migration=migration,
                record_id=record_id,
                record=json.loads(raw),
                run_id=run_id,
                source=source,
                line=line,
                enqueued_at="2026-11-27T01:02:03.000000Z",
            )
            assert writer.body(record_id, source, line, raw) == fresh.to_body()
            parsed = envelope.parse(writer.body(record_id, source, line, raw))
            assert (parsed.record_id, parsed.source, parsed.line) == (record_id, source, line)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("plain text", "not JSON"),
        ('{"a": 1}', "not a northmigrate envelope"),
        ('{"northmigrate": 99, "record": {}}', "unsupported envelope version"),
        (
            '{"northmigrate": 1, "migration": "m", "record_id": "r", "record": [1]}',
            "no record object",
        ),
        ('{"northmigrate": 1, "record": {}}', "lacks migration"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_envelope_parse_rejects_foreign_bodies(body: str, reason: str) -> None:
    with pytest.raises(envelope.EnvelopeError, match=reason):
        envelope.parse(body)


def test_load_migration_errors(tmp_path: Path) -> None:
    (tmp_path / "broken_plugin.py").write_text("import does_not_exist\n")
    (tmp_path / "not_a_migration.py").write_text("migration = 42\n")
    with pytest.raises(PluginError, match="bad-spec"):
        load_migration("bad-spec", cwd=tmp_path)
    with pytest.raises(
        PluginError, match="cannot import plugin module 'broken_plugin': ModuleNotFoundError"
    ):
        load_migration("broken_plugin:migration", cwd=tmp_path)
    with pytest.raises(PluginError, match="has no attribute 'other'"):
        load_migration("not_a_migration:other", cwd=tmp_path)
    with pytest.raises(PluginError, match=r"not a northmigrate\.Migration"):
        load_migration("not_a_migration:migration", cwd=tmp_path)
    sys.modules.pop("broken_plugin", None)
    sys.modules.pop("not_a_migration", None)


def test_example_migration_loads() -> None:
    migration = load_migration("northmigrate.examples.onboarding:migration")
    assert migration.key == "application_id"
    assert "owners.tax_id" in migration.sensitive
    assert json.dumps(list(migration.sensitive))
