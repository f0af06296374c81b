"""Many valid example records, fast: for volume and memory tests."""

from __future__ import annotations

import json
from pathlib import Path

from northmigrate.records.sample import SampleGenerator

TEMPLATES = 500


def write_records(path: Path, count: int, *, status: str | None = None) -> list[str]:
    """``count`` valid example records with unique ids (APP-00000001 …) as JSONL, fast:
    SampleGenerator makes ``TEMPLATES`` records, each line is one of them with its own id.
    ``status`` overrides the generated status mix. Returns each line's status, in order."""
    templates: list[str] = []
    statuses: list[str] = []
    for n in range(TEMPLATES):
        record = SampleGenerator(seed=n).record(n)
        record["application_id"] = "APP-@@@@@@@@"
        if status is not None:
            record["status"] = status
        templates.append(json.dumps(record, separators=(",", ":")))
        statuses.append(record["status"])
    with path.open("w") as out:
        for n in range(1, count + 1):
            out.write(templates[n % TEMPLATES].replace("@@@@@@@@", f"{n:08d}") + "\n")
    return [statuses[n % TEMPLATES] for n in range(1, count + 1)]
