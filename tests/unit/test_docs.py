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


def test_the_readmes_layout_names_every_room_of_the_tree() -> None:
    """The README's layout block names each folder and module at the package's top level
    (but ``__init__`` and ``__main__``), and nothing that is not there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Layout", 1)[1].split("```", 2)[1]
    lines = [line.split() for line in block.splitlines() if line.startswith("  ")]
    named = {words[0] for words in lines} | {
        w for words in lines for w in words if w.endswith(".py")
    }
    tree = {
        p.name + "/" if p.is_dir() else p.name
        for p in (REPO / "northmigrate").iterdir()
        if p.name not in {"__init__.py", "__main__.py", "__pycache__"}
        and not p.name.startswith(".")
        if p.is_dir() or p.suffix == ".py"
    }
    assert named == tree
