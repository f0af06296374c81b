"""The shape of the package, read from the code (no module is run): no import circle
anywhere, no room importing from a station above it, no module over 400 lines and no class
over 200 (rooms small enough to read in one sitting; see docs/architecture.md).

Every ``import`` counts, the ones inside functions too: a circle hidden behind a late import
still breaks the first import of one of its modules in a fresh interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import northmigrate

ROOT = Path(northmigrate.__file__).parent
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200

# Who may import whom. A room is a folder of the package or a module at its top level
# (``FACE`` is the package's own ``__init__``: the plugin API). The stations of the story,
# bottom to top: the base modules, aws/, the plugin and redact/, records/, sources/, then
# enqueue/, consume/ and control/ side by side, dlq/ and cutover/, deploy/, demo, cli/.
# docs/architecture.md draws the same table.
FACE = "<face>"
# failures: what kind a failure is (record, throttled, outage), asked by every room.
BASE = frozenset({"errors", "config", "config_origins", "privatefile", "failures"})
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "config": frozenset({"errors", "config_origins"}),
    "config_origins": frozenset(),
    "privatefile": frozenset({"errors"}),
    "failures": frozenset({"errors"}),
    "aws": BASE,
    "redact": BASE,
    "plugin": BASE | {"aws"},
    "records": BASE | {"aws", "plugin", "redact"},
    "sources": BASE | {"aws", "redact", "records"},
    "enqueue": BASE | {"aws", "plugin", "redact", "records", "sources"},
    "consume": BASE | {"aws", "plugin", "redact", "records"},
    "control": BASE | {"aws", "plugin", "redact", "records", "sources"},
    "dlq": BASE | {"aws", "plugin", "redact", "records", "consume", "control"},
    "cutover": BASE | {"aws", "consume"},  # a live queue handed to a new consumer
    "examples": BASE | {"aws", "plugin"},
    "starter": BASE,
    FACE: BASE | {"plugin"},
    "aws_lambda": frozenset({"consume"}),  # the deployed handler path, kept for old functions
    # enqueue and sources: the fan-out's child (its handler, names and store) and its S3 URIs
    "deploy": BASE
    | {FACE, "aws", "plugin", "redact", "consume", "control", "dlq", "enqueue", "sources"},
}
ALLOWED["demo"] = frozenset(ALLOWED) - {"demo"}
ALLOWED["cli"] = frozenset(ALLOWED) - {"cli"}
ALLOWED["__main__"] = frozenset({"cli"})


def modules() -> dict[str, Path]:
    """Every module of the northmigrate package, by its dotted name."""
    found: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The northmigrate modules that ``name`` imports (``from pkg import sub``: ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 packages
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base not in known:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import one another in a circle, one sorted list per circle (the
    strongly connected components of the graph: Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in order:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], order[target])
        if low[node] == order[node]:
            members = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(members) > 1 or node in edges.get(node, ()):
                found.append(sorted(members))

    for node in sorted(edges):
        if node not in order:
            visit(node)
    return sorted(found)


def room(module: str) -> str:
    """The room of a dotted module name: its folder, or itself at the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACE


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every import from one room into another that the room may not import."""
    return sorted(
        (name, target)
        for name, targets in edges.items()
        for target in targets
        if room(target) != room(name) and room(target) not in ALLOWED.get(room(name), ())
    )


def test_the_graph_sees_late_imports_and_submodules() -> None:
    edges = graph()
    assert "northmigrate.sources.base" in edges["northmigrate.sources.open"]
    late = {"northmigrate.sources.s3", "northmigrate.sources.dynamodb"}  # inside open_source
    assert late <= edges["northmigrate.sources.open"]
    assert "northmigrate.sources.open" in edges["northmigrate.sources"]


def test_circles_are_found_whatever_their_length() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"e"}, "f": set()}
    assert circles(edges) == [["a", "b", "c"], ["e"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_anywhere_in_the_package() -> None:
    assert circles(graph()) == []


def test_every_room_has_its_place_in_the_rules() -> None:
    rooms = {room(name) for name in modules()}
    assert rooms == set(ALLOWED)


def test_the_rules_themselves_have_no_circle() -> None:
    rules = {name: set(targets) for name, targets in ALLOWED.items()}
    assert circles(rules) == []


def test_no_room_imports_from_a_station_above_it() -> None:
    assert upward(graph()) == []


def test_an_upward_import_is_caught() -> None:
    planted = {
        "northmigrate.aws.queues": {"northmigrate.consume.tap", "northmigrate.config"},
        "northmigrate.records.envelope": {"northmigrate.records.codec"},
        "northmigrate.consume.guard": {"northmigrate.dlq.letters"},
        "northmigrate.sources.files": {"northmigrate.records.codec"},
        "northmigrate.records.validation": {"northmigrate.sources.base"},
    }
    assert upward(planted) == [
        ("northmigrate.aws.queues", "northmigrate.consume.tap"),
        ("northmigrate.consume.guard", "northmigrate.dlq.letters"),
        ("northmigrate.records.validation", "northmigrate.sources.base"),
    ]


def test_no_module_and_no_class_is_too_large_to_read_in_one_sitting() -> None:
    too_large: list[tuple[str, int]] = []
    for name, path in sorted(modules().items()):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_large.append((name, lines))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_large.append((f"{name}.{node.name}", size))
    assert too_large == []
