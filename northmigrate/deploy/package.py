"""The Lambda deployment package: northmigrate, the plugin module and their dependencies.

What goes in:

- ``northmigrate`` itself (its modules, without the CLI, which never runs on Lambda);
- the plugin's module or package, found from ``migration.plugin`` in the current directory
  (a plugin inside northmigrate, such as the example, is already there): only what the
  function imports, the ``*.py`` modules of the package and its subpackages, and the data
  files ``deploy.include`` declares. Never a dotfile or anything under a dot directory
  (``.env``, ``.venv``…), never ``__pycache__``, never a file reached through a symbolic
  link that leads out of the plugin's tree (a link inside it is followed);
- the runtime dependencies of the library, pinned to the versions installed here (what was
  tested is what runs): pydantic and its closure, tenacity. The CLI's own dependencies
  (typer, rich) and deploy's (packaging) are left out: a Lambda function never runs the CLI
  and never deploys. boto3 and botocore (and their closure) are left out too, because the
  Lambda Python runtime ships them; set ``deploy.bundle_boto3 = true`` to pin your own;
- ``deploy.requirements``: extra pip requirements of the plugin.

For ``x86_64``/``arm64`` the dependencies are binary wheels for Lambda's platform
(``pip install --platform manylinux2014_<arch> --only-binary=:all: --implementation cp
--python-version 3.12 --target …``), cached per requirement set and platform. For ``host``
they are copied from the environment running northmigrate (no network): a package for
emulators that run functions as local Python processes, and for tests.

The zip is deterministic: entries sorted, fixed timestamps, every entry a plain file of mode
0644 whatever its mode on disk, no byte code, so an unchanged build has the same
``CodeSha256`` and a second deploy changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import northmigrate
from northmigrate.errors import InputError

# What the Lambda Python runtime already holds (AWS SDK for Python and its closure).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
# Never imported on Lambda: the CLI's own (typer, rich), and google-re2, which only
# ``dlq redrive --where`` uses (and which has no manylinux2014 wheel for Lambda's platform).
CLI_ONLY = frozenset({"typer", "rich", "google-re2"})
# What northmigrate needs only to deploy (never on Lambda): not bundled for northmigrate's
# own sake; a requirement of the plugin that needs it still brings it.
DEPLOY_ONLY = frozenset({"packaging"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MAX_DIRECT_UPLOAD = 50 * 1024 * 1024  # Lambda's limit for a zip uploaded with the API call
PIP_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
# Parts of northmigrate a function never imports (and whose dependencies are not bundled).
_NOT_ON_LAMBDA = ("cli",)
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)(?:;(.*))?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    """A built zip: where it is, its Lambda ``CodeSha256`` and what it holds."""

    path: Path
    sha256: str  # base64 of the SHA-256 digest, as Lambda reports CodeSha256
    size: int
    files: int
    requirements: tuple[str, ...]
    platform: str
    plugin_files: tuple[str, ...] = ()  # what the plugin brings (none when inside northmigrate)

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class BuildOptions:
    plugin: str  # "module:attribute"
    arch: str = "x86_64"  # x86_64 | arm64 | host
    python_version: str = "3.12"
    requirements: tuple[str, ...] = ()
    bundle_boto3: bool = False
    cwd: Path = field(default_factory=Path.cwd)
    cache_dir: Path | None = None
    include: tuple[str, ...] = ()  # deploy.include: data files, as globs relative to cwd


def python_version_of(runtime: str) -> str:
    """``python3.12`` -> ``3.12``."""
    return runtime.removeprefix("python")


def _parse(requirement: str) -> tuple[str, str, str]:
    """(name, version spec, marker) of a requirement line."""
    match = _REQ.match(requirement)
    if not match:
        raise InputError(f"cannot read the requirement {requirement!r}")
    return match.group(1), match.group(2).strip(), (match.group(3) or "").strip()


def _marker_holds(marker: str) -> bool:
    if not marker:
        return True
    if "extra" in marker:
        return False
    from packaging.markers import Marker  # here, not at the top: every CLI start imports deploy

    return bool(Marker(marker).evaluate())


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _top_level_requirements(options: BuildOptions) -> list[str]:
    excluded = CLI_ONLY | DEPLOY_ONLY | (frozenset() if options.bundle_boto3 else RUNTIME_PROVIDED)
    out = []
    for requirement in metadata.requires("northmigrate") or []:
        name, _, marker = _parse(requirement)
        if canonical(name) not in excluded and _marker_holds(marker):
            out.append(requirement)
    return out


def closure(
    requirements: Iterable[str], *, exclude: Iterable[str] = ()
) -> list[metadata.Distribution]:
    """The installed distributions these requirements need, transitively (sorted by name)."""
    skip = {canonical(n) for n in exclude}
    found: dict[str, metadata.Distribution] = {}
    pending = list(requirements)
    while pending:
        name, _, marker = _parse(pending.pop())
        key = canonical(name)
        if key in found or key in skip or not _marker_holds(marker):
            continue
        dist = _installed(name)
        if dist is None:
            raise InputError(
                f"{name} is needed in the Lambda package but is not installed here",
                hint="install it in this environment, or build for a real platform "
                "(deploy.arch x86_64 or arm64)",
            )
        found[key] = dist
        pending.extend(dist.requires or [])
    return [found[k] for k in sorted(found)]


def _dist_files(dist: metadata.Distribution) -> Iterator[tuple[str, Path]]:
    """(arcname, path) of the files a distribution installed into site-packages."""
    for item in dist.files or []:
        arcname = str(item).replace(os.sep, "/")
        if (
            arcname.startswith("../")
            or "/__pycache__/" in f"/{arcname}"
            or arcname.endswith(".pyc")
        ):
            continue
        path = Path(str(dist.locate_file(item)))
        if path.is_file():
            yield arcname, path


def _tree(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in _SKIP_DIRS for part in relative.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            yield f"{prefix}/{relative.as_posix()}", path


def _hidden(parts: Sequence[str]) -> bool:
    """A dotfile, something under a dot directory, or byte code."""
    return any(part.startswith(".") or part in _SKIP_DIRS for part in parts)


def _inside(path: Path, root: Path) -> bool:
    """``path``, links resolved, is a regular file within ``root`` (itself resolved)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, a loop
        return False
    return real.is_relative_to(root) and real.is_file()


def _modules(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """(arcname, path) of the ``*.py`` modules under ``root``, in sorted order. Dot
    directories, ``__pycache__`` and linked directories are not entered; a linked module is
    kept only when its target is inside ``root``."""
    real_root = root.resolve()
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not _hidden([d])]
        for name in filenames:
            path = Path(directory) / name
            if name.endswith(".py") and not _hidden([name]) and _inside(path, real_root):
                found.append((f"{prefix}/{path.relative_to(root).as_posix()}", path))
    return iter(sorted(found))


def _included(patterns: Sequence[str], cwd: Path) -> list[tuple[str, Path]]:
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
            if not _hidden(path.relative_to(cwd).parts)
            and not path.is_dir()
            and _inside(path, real_cwd)
        ]
        if not matched:
            raise InputError(
                f"deploy.include {pattern!r} matches no file in {cwd}",
                hint="dotfiles, __pycache__ and links that lead outside never go in",
            )
        out += matched
    return out


def plugin_sources(plugin: str, cwd: Path, include: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """The plugin's files: its modules (none when it lives inside northmigrate) and the data
    files ``include`` declares; see the module's docstring for what never goes in."""
    module = plugin.partition(":")[0]
    top = module.split(".")[0]
    if not top:
        raise InputError(f"migration.plugin {plugin!r} is not of the form module:attribute")
    files = _included(include, cwd)
    if top == "northmigrate":
        return files
    as_file = cwd / f"{top}.py"
    as_package = cwd / top
    if as_package.is_dir() and (as_package / "__init__.py").is_file():
        return sorted(dict([*_modules(as_package, top), *files]).items())
    if as_file.is_file():
        return sorted(dict([(f"{top}.py", as_file), *files]).items())
    raise InputError(
        f"the plugin module {top!r} is neither {top}.py nor a package {top}/ in {cwd}",
        hint="run deploy from the directory that holds the plugin",
    )


def _pinned(dists: Iterable[metadata.Distribution]) -> list[str]:
    return [f"{canonical(d.metadata['Name'])}=={d.version}" for d in dists]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "northmigrate" / "lambda-deps"


def _pip_install(requirements: list[str], platform: str, options: BuildOptions) -> Path:
    """A directory holding the requirements installed for Lambda's platform (cached)."""
    key = hashlib.sha256(
        json.dumps([sorted(requirements), platform, options.python_version]).encode()
    ).hexdigest()[:24]
    cache = (options.cache_dir or default_cache_dir()) / key
    if (cache / ".complete").is_file():
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="deps-", dir=cache.parent))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--platform", platform, "--only-binary=:all:", "--implementation", "cp",
        "--python-version", options.python_version, "--target", str(staging), *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise InputError(
            f"cannot build the Lambda dependencies for {platform}: {last}",
            hint="every dependency needs a wheel for that platform; check deploy.requirements",
        )
    (staging / ".complete").write_text("\n".join(requirements) + "\n")
    staging.rename(cache)
    return cache


def _installed_tree(root: Path) -> Iterator[tuple[str, Path]]:
    for arcname, path in _tree(root, "."):
        arcname = arcname.removeprefix("./")
        if arcname == ".complete" or arcname.startswith("bin/"):
            continue
        yield arcname, path


def write_zip(entries: dict[str, Path], out: Path) -> None:
    """A zip whose bytes depend only on the entries' names and contents."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for arcname in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.create_system = 3  # unix, whatever the build machine
            archive.writestr(info, entries[arcname].read_bytes(), compresslevel=6)
    tmp.replace(out)


def code_sha256(data: bytes) -> str:
    """Lambda's ``CodeSha256`` of a zip: base64 of its SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def build_package(options: BuildOptions, out: Path) -> Package:
    """Build the deployment zip at ``out``."""
    entries: dict[str, Path] = {}
    top_level = _top_level_requirements(options)
    excluded = CLI_ONLY | (frozenset() if options.bundle_boto3 else RUNTIME_PROVIDED)
    dists = closure(top_level, exclude=excluded)
    if options.arch == "host":
        platform = "host"
        extra = closure(options.requirements, exclude=excluded) if options.requirements else []
        seen = {canonical(d.metadata["Name"]) for d in dists}
        dists += [d for d in extra if canonical(d.metadata["Name"]) not in seen]
        requirements = _pinned(dists)
        for dist in dists:
            entries.update(_dist_files(dist))
    else:
        platform = PIP_PLATFORMS.get(options.arch, "")
        if not platform:
            raise InputError(f"invalid value for deploy.arch: {options.arch!r}")
        requirements = _pinned(dists) + list(options.requirements)
        entries.update(_installed_tree(_pip_install(requirements, platform, options)))
    for arcname, path in _modules(Path(northmigrate.__file__).resolve().parent, "northmigrate"):
        if arcname.split("/")[1] not in _NOT_ON_LAMBDA and arcname != "northmigrate/__main__.py":
            entries[arcname] = path
    plugin_files = plugin_sources(options.plugin, options.cwd, options.include)
    entries.update(plugin_files)
    write_zip(entries, out)
    data = out.read_bytes()
    if len(data) > MAX_DIRECT_UPLOAD:
        raise InputError(
            f"the Lambda package is {len(data) // 1_048_576} MB, over the 50 MB Lambda takes "
            "in one upload",
            hint="trim deploy.requirements, or deploy with --template through S3",
        )
    return Package(
        path=out,
        sha256=code_sha256(data),
        size=len(data),
        files=len(entries),
        requirements=tuple(requirements),
        platform=platform,
        plugin_files=tuple(arcname for arcname, _ in plugin_files),
    )
