"""Memory stays flat in the number of records, checked at a size CI can afford.

``validate`` of 1,000,000 records under 150 MB is the volume test
(``tests/integration/test_volume.py``, ``make volume``); this is its guard in every ``make
test``: the CLI's own peak resident set size (``VmHWM`` of its process) for 5,000 and for
100,000 records. Streaming keeps only the duplicate-id index per record (about 26 bytes
each, measured 56.4 MB at 2,000 and 58.9 MB at 100,000 records); a record, a model or a
line kept per record would add a kilobyte or more each, 100 MB over this range.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Project, peak_rss_mb
from support.samples import write_records

pytestmark = [pytest.mark.integration]

NOWHERE = "http://127.0.0.1:9"  # validate needs no endpoint: nothing listens here
SMALL, LARGE = 5_000, 100_000
GROWTH_LIMIT_MB = 8.0  # under 90 bytes a record over the 95,000 between the two runs
RSS_LIMIT_MB = 150


def test_validate_memory_is_flat_in_the_number_of_records(tmp_path: Path) -> None:
    project = Project(root=tmp_path, endpoint=NOWHERE)
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_records(small, SMALL)
    write_records(large, LARGE)

    small_rss, small_report = peak_rss_mb(project, "validate", str(small))
    large_rss, large_report = peak_rss_mb(project, "validate", str(large))

    assert small_report["valid"] == SMALL, small_report
    assert large_report["read"] == large_report["valid"] == LARGE, large_report
    assert large_report["invalid"] == large_report["errors_total"] == 0, large_report
    growth = large_rss - small_rss
    assert growth < GROWTH_LIMIT_MB, (
        f"peak RSS {small_rss:.1f} MB for {SMALL:,} records, {large_rss:.1f} MB for {LARGE:,}"
    )
    assert large_rss < RSS_LIMIT_MB
