"""Memory stays flat while a large S3 object streams through validate.

A generated JSONL object of at least 200 MB goes into a moto server of its own (moto holds
S3 objects in memory, and S3 is fast there); ``validate`` reads it through the CLI, and the
peak RSS of that process (from wait4) is compared with a run over a 1 MB object. Run it
with ``make volume`` or::

    .venv/bin/python -m pytest -m volume tests/integration/test_sources_remote_volume.py -q -s
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project, client, peak_rss_mb, start_local

from northmigrate.records.sample import SampleGenerator

pytestmark = [pytest.mark.volume, pytest.mark.integration]
BIG = 200 * 1024 * 1024
TEMPLATES = 500


@pytest.fixture(autouse=True)
def only_when_asked(request: pytest.FixtureRequest) -> None:
    if "volume" not in (request.config.getoption("-m") or ""):
        pytest.skip("a volume test: run it with -m volume")


@pytest.fixture(scope="module")
def own_endpoint() -> Iterator[str]:
    process, url = start_local()
    yield url
    process.terminate()
    process.wait(timeout=10)


def write_object(path: Path, size: int) -> int:
    """JSONL of valid example records with unique ids, at least ``size`` bytes; the count."""
    templates = []
    for n in range(TEMPLATES):
        record = SampleGenerator(seed=n).record(n)
        record["application_id"] = "APP-@@@@@@@@"
        templates.append(json.dumps(record, separators=(",", ":")))
    written = count = 0
    with path.open("w") as out:
        while written < size:
            count += 1
            line = templates[count % TEMPLATES].replace("@@@@@@@@", f"{count:08d}") + "\n"
            out.write(line)
            written += len(line)
    return count


def test_a_200_mb_object_streams_in_flat_memory(tmp_path: Path, own_endpoint: str) -> None:
    project = Project(root=tmp_path, endpoint=own_endpoint)
    s3 = client("s3", own_endpoint)
    s3.create_bucket(Bucket="exports")
    big = tmp_path / "big.jsonl"
    count = write_object(big, BIG)
    s3.upload_file(str(big), "exports", "big.jsonl")
    size = big.stat().st_size
    big.unlink()
    small = tmp_path / "small.jsonl"
    small_count = write_object(small, 1024 * 1024)
    s3.upload_file(str(small), "exports", "small.jsonl")

    base_rss, small_report = peak_rss_mb(project, "validate", "s3://exports/small.jsonl")
    assert small_report["valid"] == small_count
    rss, report = peak_rss_mb(project, "validate", "s3://exports/big.jsonl")
    assert report["read"] == report["valid"] == count and report["invalid"] == 0
    print(
        f"\nvalidate of a {size / 1e6:.0f} MB S3 object ({count} records): peak RSS "
        f"{rss:.0f} MB (a 1 MB object: {base_rss:.0f} MB), {report['duration_s']:.1f} s"
    )
    assert size >= BIG
    # flat: the object is 200 MB; reading it costs little more than reading 1 MB
    # (the duplicate-key set grows by 8 bytes a record: about 2 MB here)
    assert rss - base_rss < 40, (rss, base_rss)
