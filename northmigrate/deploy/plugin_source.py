"""Where the plugin is, and what of it goes in the Lambda package.

``migration.plugin`` is resolved as ``load_migration`` imports it: the directory deploy runs
from first, then the import system (``sys.path``: site-packages, ``PYTHONPATH``…). What goes
in the package:

- a module or package in the working directory: its ``*.py`` modules (see below);
- a module that belongs to an installed distribution (``pip install acme-migrations``,
  ``acme_migrations:migration``): the files the distribution installed (its modules, its data
  files and its ``.dist-info``, so ``importlib.metadata`` works on Lambda too), and its
  declared dependencies (``Requires-Dist``), which ``build_package`` pins to what is
  installed here; in a namespace package shared by several distributions, the one that
  installed the plugin module. An editable install (``pip install -e``) ships the modules
  of its source directory, and its distribution's dependencies just the same;
- a module found elsewhere on ``sys.path`` without a distribution: its ``*.py`` modules;
- a plugin inside northmigrate (the example): nothing, it is already there.

Never a dotfile or anything under a dot directory (``.env``, ``.venv``…), never
``__pycache__`` or byte code, never what a symbolic link points to: a link in the plugin's
tree or among the files ``deploy.include`` matches (a file or a directory, at any depth,
wherever it points) is skipped, never followed, and a plugin module that is itself a link is
refused; data files of a local plugin only when ``deploy.include`` declares them.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata as metadata
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from northmigrate.errors import InputError

SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
Files = list[tuple[str, Path]]  # (name in the zip, file here)


@dataclass(frozen=True)
class PluginSource:
    """The plugin's files, and the distribution it comes from (if any) with its declared
    requirements (``Requires-Dist`` lines, markers kept)."""

    files: Files
    distribution: str | None = None  # "acme-migrations 1.2.0"
    requires: tuple[str, ...] = ()


def hidden(parts: Sequence[str]) -> bool:
    """A dotfile, something under a dot directory, or byte code."""
    return any(part.startswith(".") or part in SKIP_DIRS for part in parts)


def _inside(path: Path, root: Path) -> bool:
    """``path``, links resolved, is a regular file within ``root`` (itself resolved)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, a loop
        return False
    return real.is_relative_to(root) and real.is_file()


def linked(path: Path, root: Path) -> bool:
    """Is ``path`` itself, or any directory between ``root`` and it, a symbolic link?"""
    relative = path.relative_to(root)
    return any(
        (root / Path(*relative.parts[:n])).is_symlink() for n in range(1, len(relative.parts) + 1)
    )


def modules(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """(arcname, path) of the ``*.py`` modules under ``root``, in sorted order. Dot
    directories, ``__pycache__`` and linked directories are not entered; a linked module is
    skipped, wherever it points."""
    real_root = root.resolve()
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not hidden([d])]
        for name in filenames:
            path = Path(directory) / name
            if (
                name.endswith(".py")
                and not hidden([name])
                and not path.is_symlink()
                and _inside(path, real_root)
            ):
                found.append((f"{prefix}/{path.relative_to(root).as_posix()}", path))
    return iter(sorted(found))


def included(patterns: Sequence[str], cwd: Path) -> list[tuple[str, Path]]:
    """The data files ``deploy.include`` declares (globs relative to ``cwd``)."""
    real_cwd = cwd.resolve()
    out: list[tuple[str, Path]] = []
    for pattern in patterns:
        parts = Path(pattern).parts
        if not pattern or Path(pattern).is_absolute() or ".." in parts:
            raise InputError(
                f"deploy.include {pattern!r} points outside the directory deploy runs from",
                hint='give paths relative to it, e.g. "mypkg/data/*.json"',
            )
        matched = [
            (path.relative_to(cwd).as_posix(), path)
            for path in sorted(cwd.glob(pattern))
            if not hidden(path.relative_to(cwd).parts)
            and not linked(path, cwd)
            and not path.is_dir()
            and _inside(path, real_cwd)
        ]
        if not matched:
            raise InputError(
                f"deploy.include {pattern!r} matches no file in {cwd}",
                hint="dotfiles, __pycache__ and symbolic links (or what is under a linked "
                "directory) never go in",
            )
        out += matched
    return out


def _top(plugin: str) -> str:
    top = plugin.partition(":")[0].split(".")[0]
    if not top:
        raise InputError(f"migration.plugin {plugin!r} is not of the form module:attribute")
    return top


def _local(top: str, root: Path) -> Files | None:
    """The modules of ``top`` as a package or a module in ``root``, or None."""
    as_package, as_file = root / top, root / f"{top}.py"
    for path in (as_package, as_file):
        if path.is_symlink():
            raise InputError(
                f"the plugin {path} is a symbolic link: northmigrate never packages what a "
                "link points to",
                hint="put the plugin itself there (a copy, not a link)",
            )
    if as_package.is_dir() and (as_package / "__init__.py").is_file():
        return list(modules(as_package, top))
    if as_file.is_file():
        return [(f"{top}.py", as_file)]
    return None


def _distribution(top: str, origin: Path) -> tuple[metadata.Distribution, bool] | None:
    """The installed distribution that provides ``top``, and whether ``origin`` is one of
    its files (False: an editable install, whose modules live in a source directory). Of
    several (a namespace package), the one that installed ``origin``."""
    real = origin.resolve()
    candidates = []
    for name in metadata.packages_distributions().get(top, []):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if any(Path(str(dist.locate_file(f))).resolve() == real for f in dist.files or []):
            return dist, True
        candidates.append(dist)
    return (candidates[0], False) if len(candidates) == 1 else None


def _distribution_files(dist: metadata.Distribution) -> Iterator[tuple[str, Path]]:
    """What a distribution installed next to its modules (not scripts or headers outside
    site-packages), without byte code or dotfiles."""
    for item in dist.files or []:
        arcname = str(item).replace(os.sep, "/")
        if arcname.startswith("../") or arcname.endswith(".pyc") or hidden(arcname.split("/")):
            continue
        path = Path(str(dist.locate_file(item)))
        if path.is_file():
            yield arcname, path


def _found(plugin: str, cwd: Path) -> tuple[Path, bool] | None:
    """(origin, is a package) of the plugin's top-level module through the import system,
    the working directory first, as ``load_migration`` imports it; for a namespace package
    (no ``__init__.py``: ``acme.migrations``), the plugin module's own origin. None when it
    is nowhere."""
    module = plugin.partition(":")[0]
    top = module.split(".")[0]
    path = [str(cwd), *(p for p in sys.path if p and Path(p).resolve() != cwd.resolve())]
    for entry in path:
        spec = importlib.machinery.PathFinder.find_spec(top, [entry])
        if spec is None:
            continue
        if spec.origin and spec.origin not in ("built-in", "frozen"):
            return Path(spec.origin), spec.submodule_search_locations is not None
        if spec.submodule_search_locations is not None and module != top:
            try:  # a namespace package: its parts may come from several distributions
                inner = importlib.util.find_spec(module)
            except ImportError:
                return None
            return (Path(inner.origin), False) if inner and inner.origin else None
    return None


def locate_plugin(plugin: str, cwd: Path, include: Sequence[str] = ()) -> PluginSource:
    """The plugin's files and dependencies (see the module's docstring)."""
    top = _top(plugin)
    extra = included(include, cwd)
    if top == "northmigrate":
        return PluginSource(extra)
    found = _found(plugin, cwd)
    if found is None:
        raise InputError(
            f"the plugin module {top!r} is neither {top}.py nor a package {top}/ in {cwd}, "
            "nor installed in this environment",
            hint="install its distribution here (pip install …), or run deploy from the "
            "directory that holds it",
        )
    origin, package = found
    owner = _distribution(top, origin)
    if owner is not None and owner[1]:  # installed: what the distribution installed
        files = list(_distribution_files(owner[0]))
    else:  # a local module, an editable install, a directory on sys.path
        files = _local(top, origin.parent.parent if package else origin.parent) or []
    if not files:
        raise InputError(
            f"the plugin module {plugin.partition(':')[0]!r} is in a namespace package "
            "that no installed distribution provides",
            hint="install it as a distribution, or give its top-level package an __init__.py",
        )
    name: str | None = None
    requires: tuple[str, ...] = ()
    if owner is not None:
        name = f"{owner[0].metadata['Name']} {owner[0].version}"
        requires = tuple(owner[0].requires or [])
    return PluginSource(sorted(dict([*files, *extra]).items()), name, requires)


def plugin_sources(plugin: str, cwd: Path, include: Sequence[str] = ()) -> Files:
    """The plugin's files (``locate_plugin``'s)."""
    return locate_plugin(plugin, cwd, include).files
