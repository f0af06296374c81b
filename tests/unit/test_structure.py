"""The shape of the package, read from the code (no module is run): no import circle
anywhere, no module over 400 lines and no class over 200 (rooms small enough to read in one
sitting; see docs/architecture.md).

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
