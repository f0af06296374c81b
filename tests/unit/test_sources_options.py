"""ScanOptions, the names of sources, and the one check of which flag applies to which source."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from northmigrate.errors import EXIT_USAGE, InputError
from northmigrate.sources import ScanOptions, SourceError, check_options, open_source
from northmigrate.sources.names import is_s3_prefix, kind_of, s3_uri, table_uri


@pytest.mark.parametrize(
    ("name", "options", "from_line", "message"),
    [
        (
            "records.jsonl",
            ScanOptions(segments=2),
            None,
            "--segments applies to dynamodb:// sources, not to records.jsonl",
        ),
        ("-", ScanOptions(consistent=True), None, "--consistent applies to dynamodb:// sources"),
        ("s3://b/k.jsonl", ScanOptions(filters=("a=1",)), None, "--filter applies to dynamodb://"),
        ("s3://b/k.csv", ScanOptions(filter_values="{}"), None, "--filter-values applies to"),
        ("x.csv", ScanOptions(page_size=5), None, "page_size applies to dynamodb:// sources"),
        (
            "records.jsonl",
            ScanOptions(filter_values="{}", consistent=True, segments=3),
            None,
            "--segments applies",  # the first in the order of the CLI's flags
        ),
        (
            "x.jsonl",
            ScanOptions(resume=True),
            None,
            "--resume applies to dynamodb:// sources, not to x.jsonl (use --from-line N)",
        ),
        (
            "dynamodb://t",
            ScanOptions(),
            3,
            "--from-line applies to one file or object, not to dynamodb://t "
            "(for a table, use --resume)",
        ),
        (
            "s3://b/p/",
            ScanOptions(),
            3,
            "--from-line applies to one file or object, not to s3://b/p/ (for a prefix, give "
            "the object too: --from-object KEY --from-line N)",
        ),
    ],
)
def test_a_flag_on_a_source_it_does_not_apply_to_is_exit_2(
    name: str, options: ScanOptions, from_line: int | None, message: str
) -> None:
    with pytest.raises(SourceError) as caught:
        check_options(name, options, from_line=from_line)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, InputError) and caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("name", "options", "from_line"),
    [
        (
            "dynamodb://t?page_size=3",
            ScanOptions(
                segments=2,
                consistent=True,
                filters=("a=1",),
                filter_values="{}",
                page_size=4,
                resume=True,
            ),
            None,
        ),
        ("s3://b/k.jsonl", ScanOptions(), 3),
        ("-", ScanOptions(), 3),
        (
            "records.jsonl",  # what the run adds (not flags) applies to tables, is ignored here
            ScanOptions(sensitive=("ssn",), state_dir=Path("x"), queue_name="q", save_state=False),
            7,
        ),
    ],
)
def test_flags_that_apply_pass(name: str, options: ScanOptions, from_line: int | None) -> None:
    check_options(name, options, from_line=from_line)


def test_open_source_checks_the_flags_before_opening(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(SourceError, match="--segments applies to dynamodb://"):
        open_source(str(missing), options=ScanOptions(segments=2))
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(missing), options=ScanOptions(sensitive=("ssn",)))


def test_remote_sources_need_the_clients() -> None:
    with pytest.raises(SourceError, match="needs the AWS clients"):
        open_source("dynamodb://t")
    with pytest.raises(SourceError, match="needs the AWS clients"):
        open_source("s3://b/k.jsonl")


def test_scan_options_are_frozen_and_keep_tuples() -> None:
    options = ScanOptions(filters=["a=1", "b=2"], sensitive=["ssn"])  # type: ignore[arg-type]
    assert options.filters == ("a=1", "b=2") and options.sensitive == ("ssn",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.segments = 3  # type: ignore[misc]
    assert ScanOptions() == ScanOptions(filters=())
    with pytest.raises(ValueError, match="state_file or a state_dir"):
        ScanOptions(state_file=Path("a.json"), state_dir=Path("d"))


def test_source_names_are_told_apart_and_parsed() -> None:
    kinds = [kind_of(n) for n in ("-", "a.jsonl", "s3://b/k", "dynamodb://t", "./-")]
    assert kinds == ["stdin", "file", "s3", "dynamodb", "file"]
    assert is_s3_prefix("s3://b/p/") and is_s3_prefix("s3://b/")
    assert not is_s3_prefix("s3://b/k.jsonl") and not is_s3_prefix("dir/")
    assert s3_uri("s3://b/p/q.csv") == ("b", "p/q.csv") and s3_uri("s3://b/") == ("b", "")
    assert table_uri("dynamodb://t") == ("t", None)
    assert table_uri("dynamodb://t?page_size=7") == ("t", 7)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dynamodb://", "expected dynamodb://TABLE"),
        ("dynamodb://t?page_size=x", "page_size must be a whole number"),
        ("dynamodb://t?page_size", "cannot read the query"),
        ("dynamodb://t?limit=3", "unknown parameter 'limit'"),
        ("s3://bucket-only", "name an object or a prefix"),
    ],
)
def test_bad_uris_are_source_errors(name: str, message: str) -> None:
    parse = table_uri if name.startswith("dynamodb://") else s3_uri
    with pytest.raises(SourceError, match=message):
        parse(name)
