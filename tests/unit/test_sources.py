from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.sources import SourceError, open_source
from northmigrate.sources.files import MAX_LINE_BYTES, read_csv, read_json_array, read_jsonl


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a read (chunk boundaries everywhere)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.data[self.pos : self.pos + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_jsonl_numbers_lines_and_skips_blank_ones() -> None:
    data = b'\xef\xbb\xbf{"a": 1}\n\n  \n{"a": 2}\r\nnot json\n'
    items = list(read_jsonl(io.BytesIO(data)))
    assert [(i.line, i.text, i.error) for i in items] == [
        (1, '{"a": 1}', None),
        (4, '{"a": 2}', None),
        (5, "not json", None),
    ]


def test_jsonl_bad_utf8_and_overlong_lines_are_reported_and_reading_goes_on() -> None:
    data = b'{"a": 1}\n{"a": "\xff"}\n' + b"x" * (MAX_LINE_BYTES + 10) + b'\n{"a": 3}\n'
    items = list(read_jsonl(io.BufferedReader(io.BytesIO(data))))  # type: ignore[arg-type]
    assert [i.line for i in items] == [1, 2, 3, 4]
    assert items[1].error is not None and "UTF-8" in items[1].error
    assert items[2].error is not None and "longer than" in items[2].error
    assert items[3].text == '{"a": 3}'


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_jsonl_never_fails_and_never_drops_a_line(data: bytes) -> None:
    items = list(read_jsonl(io.BytesIO(data)))
    expected = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # \n, \r\n and a lone \r each end a line (universal newlines)
    for number, raw in enumerate(re.split(rb"\r\n?|\n", data), 1):
        if raw.strip():
            expected.append(number)
    assert [i.line for i in items] == expected
    for item in items:
        assert (item.text is None) != (item.error is None)


def test_json_array_streams_elements_with_their_start_lines() -> None:
    records = [{"id": n, "text": "x" * (n * 7)} for n in range(40)]
    text = "[\n" + ",\n".join(json.dumps(r, indent=1) for r in records) + "\n]\n"
    items = list(read_json_array(io.BufferedReader(Trickle(text.encode(), 5))))  # type: ignore[arg-type]
    assert [json.loads(i.text or "") for i in items] == records
    lines = text.split("\n")
    for item in items:
        assert lines[item.line - 1].startswith("{"), item.line  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}', "one JSON array"),
        ('[{"a": 1}, {"a": ]', "not closed"),  # the broken element is an item first
        ('[{"a": 1} {"a": 2}]', "expected ','"),
        ('[{"a": 1},', "a value is missing after ','"),
        ('[{"a": 1}, "open string', "not closed"),
    ],
)
def test_json_array_that_cannot_be_resynchronised_raises(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        list(read_json_array(io.BytesIO(text.encode())))


def test_json_array_non_object_elements_are_items() -> None:
    items = list(read_json_array(io.BytesIO(b'[1, "two", null, {"a": 1}]')))
    assert [i.text for i in items] == ["1", '"two"', "null", '{"a": 1}']


def test_csv_nests_dotted_headers_parses_json_cells_and_reports_bad_rows() -> None:
    data = (
        b"id,owner.name,owner.age,tags,empty\n"
        b'1,Ana,31,"[""a"", ""b""]",\n'
        b"\n"
        b"2,Bo,40,[],x,extra\n"
        b'3,"multi\nline",5,[],\n'
    )
    items = list(read_csv(io.BytesIO(data)))
    assert items[0].line == 2
    assert items[0].data == {"id": "1", "owner": {"name": "Ana", "age": "31"}, "tags": ["a", "b"]}
    assert items[1].line == 4 and items[1].error == "row has 6 columns, the header has 5"
    assert items[2].line == 5 and items[2].data["owner"]["name"] == "multi\nline"


def test_csv_with_bad_utf8_line_reports_it() -> None:
    items = list(read_csv(io.BytesIO(b"id,name\n1,\xff\xfe\n2,b\n")))
    assert [(i.line, i.error is None) for i in items] == [(2, False), (3, True)]


def test_open_source_by_extension_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.write('{"a": 1}\n{"a": 2}\n')
    source = open_source(str(path))
    assert [i.text for i in source] == ['{"a": 1}', '{"a": 2}']
    done, total = source.progress()
    assert done == total == path.stat().st_size


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.jsonl", "does not exist"), ("records.xml", "cannot tell the format")],
)
def test_open_source_errors(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        open_source(str(tmp_path / name))
    assert caught.value.exit_code == 2


def test_a_file_keeps_no_resume_state(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n')
    source = open_source(str(path))
    items = list(source)
    assert source.checkpointed is False and source.resume_info() is None
    source.settle(items[0], True)  # nothing to record: the file resumes with --from-line
    source.close()


def test_open_source_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    with pytest.raises(SourceError, match="is a directory"):
        open_source(str(folder))


@pytest.mark.parametrize(
    ("header", "names"),
    [
        ("id,notes.extra,notes", ("'notes'", "'notes.extra'")),
        ("id,notes,notes.extra", ("'notes'", "'notes.extra'")),
        ("id,a.b.c,a", ("'a'", "'a.b.c'")),
        ("id,a.b,a.b.c", ("'a.b'", "'a.b.c'")),
    ],
)
def test_csv_columns_that_claim_the_same_field_are_an_input_error(
    header: str, names: tuple[str, str]
) -> None:
    data = f"{header}\n1,x,y\n".encode()
    with pytest.raises(SourceError) as raised:
        list(read_csv(io.BytesIO(data)))
    assert raised.value.exit_code == 2
    for name in names:
        assert name in str(raised.value)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("id,,x", "empty column name"),
        ("id,x,x", "repeats the column 'x'"),
        ("id,a..b", "empty part"),
    ],
)
def test_csv_header_names_are_checked(header: str, problem: str) -> None:
    with pytest.raises(SourceError, match=problem):
        list(read_csv(io.BytesIO(f"{header}\n1,2,3\n".encode())))


def test_a_csv_with_cr_only_line_endings_is_read_row_by_row() -> None:
    data = b"id,name\r1,a\r2,b\r3,c"
    items = list(read_csv(io.BytesIO(data)))
    assert [(i.line, i.data) for i in items] == [
        (2, {"id": "1", "name": "a"}),
        (3, {"id": "2", "name": "b"}),
        (4, {"id": "3", "name": "c"}),
    ]
