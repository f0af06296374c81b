"""The Lambda deployment package: northmigrate, the plugin module and their dependencies.

What goes in:

- ``northmigrate`` itself (its modules, without the CLI, which never runs on Lambda);
- the plugin, found from ``migration.plugin`` in the current directory or through the
  import system (an installed distribution brings its files and its declared
  dependencies): see ``deploy.plugin_source`` for what goes in and what never does;
- the runtime dependencies of the library, pinned to the versions installed here (what was
  tested is what runs): pydantic and its closure, tenacity. The CLI's own dependencies
  (typer, rich) and deploy's (packaging) are left out: a Lambda function never runs the CLI
  and never deploys. boto3 and botocore (and their closure) are left out too, because the
  Lambda Python runtime ships them; set ``deploy.bundle_boto3 = true`` to pin your own;
- the dependencies the plugin's distribution declares, pinned to the versions installed here;
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import northmigrate
from northmigrate.deploy.plugin_source import SKIP_DIRS, locate_plugin, modules, plugin_sources
from northmigrate.errors import InputError

__all__ = ["BuildOptions", "Package", "build_package", "closure", "plugin_sources"]

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
    plugin_distribution: str | None = None  # "name version" when installed as a distribution
    plugin_requirements: tuple[str, ...] = ()  # its declared dependencies, pinned

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
        if any(part in SKIP_DIRS for part in relative.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            yield f"{prefix}/{relative.as_posix()}", path


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
    source = locate_plugin(options.plugin, options.cwd, options.include)
    # The plugin's own dependencies, as its distribution declares them (northmigrate is
    # there already; boto3 too, in Lambda's runtime, unless bundled).
    own = (frozenset() if options.bundle_boto3 else RUNTIME_PROVIDED) | {"northmigrate"}
    plugin_dists = closure(source.requires, exclude=own)
    seen = {canonical(d.metadata["Name"]) for d in dists}
    dists += [d for d in plugin_dists if canonical(d.metadata["Name"]) not in seen]
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
    for arcname, path in modules(Path(northmigrate.__file__).resolve().parent, "northmigrate"):
        if arcname.split("/")[1] not in _NOT_ON_LAMBDA and arcname != "northmigrate/__main__.py":
            entries[arcname] = path
    entries.update(source.files)
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
        plugin_files=tuple(arcname for arcname, _ in source.files),
        plugin_distribution=source.distribution,
        plugin_requirements=tuple(_pinned(plugin_dists)),
    )
