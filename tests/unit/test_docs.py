"""The docs point at tests that exist: every ``file.py::test_name`` named in docs/ and the
README is a test function in that file (a renamed or deleted test fails the build here, not
in a reader's trust)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`((?:unit|integration|chaos)/[\w/]+\.py)::(\w+)")


def references() -> list[tuple[str, str, str]]:
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        found += [(doc.name, path, name) for path, name in REFERENCE.findall(text)]
    return found


def test_the_docs_name_tests() -> None:
    assert len(references()) > 50  # the guarantees are backed by named tests


def test_every_test_the_docs_name_exists() -> None:
    missing = []
    for doc, path, name in references():
        source = REPO / "tests" / path
        if not source.exists() or not re.search(rf"^def {name}\(", source.read_text(), re.M):
            missing.append(f"{doc}: {path}::{name}")
    assert missing == []


PACKAGE_PATH = re.compile(r"`(?:northmigrate/)?((?:[a-z_]+/)*[a-z_]+\.py|[a-z_]+/(?:[a-z_]+/)*)`")
ROOMS = {p.name for p in (REPO / "northmigrate").iterdir() if p.is_dir()}


def test_every_module_and_room_the_docs_name_is_in_the_tree() -> None:
    """A path into the package (``records/codec.py``, ``consume/worker/``) named in the
    README or docs/ exists: the layout the docs describe is the tree's."""
    missing = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for path in PACKAGE_PATH.findall(doc.read_text(encoding="utf-8")):
            if path.split("/")[0] in ROOMS and not (REPO / "northmigrate" / path).exists():
                missing.append(f"{doc.name}: {path}")
    assert missing == []
