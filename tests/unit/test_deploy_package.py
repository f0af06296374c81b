"""The deployment package: what goes in, what stays out, and the same bytes every time."""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from northmigrate.deploy import package as pkg
from northmigrate.deploy.package import BuildOptions, build_package, code_sha256
from northmigrate.errors import InputError

EXAMPLE = "northmigrate.examples.onboarding:migration"


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def tops(path: Path) -> set[str]:
    return {name.split("/", 1)[0] for name in names(path)}


def test_host_build_is_deterministic_and_holds_what_lambda_needs(tmp_path: Path) -> None:
    first = build_package(BuildOptions(EXAMPLE, arch="host", cwd=tmp_path), tmp_path / "a.zip")
    second = build_package(BuildOptions(EXAMPLE, arch="host", cwd=tmp_path), tmp_path / "b.zip")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == code_sha256(first.path.read_bytes())
    listed = names(first.path)
    assert listed == sorted(listed)
    with zipfile.ZipFile(first.path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert not [n for n in listed if n.endswith(".pyc") or "__pycache__" in n]
    assert "northmigrate/aws_lambda.py" in listed
    assert not [n for n in listed if n.startswith("northmigrate/cli/")]
    assert "northmigrate/examples/onboarding.py" in listed
    present = tops(first.path)
    assert {"pydantic", "pydantic_core", "tenacity", "annotated_types"} <= present
    # the runtime ships the AWS SDK; the CLI's and deploy's dependencies are never used on Lambda
    assert not present & {"boto3", "botocore", "s3transfer", "typer", "rich", "click", "re2"}
    assert "packaging" not in present
    assert f"pydantic=={metadata.version('pydantic')}" in first.requirements


def test_boto3_is_bundled_on_request(tmp_path: Path) -> None:
    built = build_package(
        BuildOptions(EXAMPLE, arch="host", bundle_boto3=True, cwd=tmp_path), tmp_path / "p.zip"
    )
    assert {"boto3", "botocore", "s3transfer", "jmespath"} <= tops(built.path)


def test_the_plugin_comes_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "mymig.py").write_text("X = 1\n")
    built = build_package(
        BuildOptions("mymig:migration", arch="host", cwd=tmp_path), tmp_path / "a.zip"
    )
    assert "mymig.py" in names(built.path)
    (tmp_path / "mymig.py").write_text("X = 2\n")
    changed = build_package(
        BuildOptions("mymig:migration", arch="host", cwd=tmp_path), tmp_path / "b.zip"
    )
    assert changed.sha256 != built.sha256  # new code, new digest: deploy updates the code

    package_dir = tmp_path / "pkgmig"
    (package_dir / "sub").mkdir(parents=True)
    (package_dir / "__init__.py").write_text("")
    (package_dir / "sub" / "core.py").write_text("")
    (package_dir / "__pycache__").mkdir()
    (package_dir / "__pycache__" / "x.pyc").write_bytes(b"junk")
    built = build_package(
        BuildOptions("pkgmig.sub.core:migration", arch="host", cwd=tmp_path), tmp_path / "c.zip"
    )
    listed = names(built.path)
    assert "pkgmig/__init__.py" in listed and "pkgmig/sub/core.py" in listed
    assert not [n for n in listed if n.startswith("pkgmig/__pycache__")]


def test_a_plugin_not_in_the_working_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"neither nowhere\.py nor a package nowhere/"):
        build_package(
            BuildOptions("nowhere:migration", arch="host", cwd=tmp_path), tmp_path / "x.zip"
        )


def test_lambda_platform_builds_ask_pip_for_binary_wheels_and_cache_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        target = Path(command[command.index("--target") + 1])
        (target / "pydantic_core").mkdir(parents=True)
        (target / "pydantic_core" / "_core.cpython-312-aarch64-linux-gnu.so").write_bytes(b"so")
        (target / "bin").mkdir()
        (target / "bin" / "script").write_text("#!")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(pkg.subprocess, "run", fake_run)
    options = BuildOptions(
        EXAMPLE, arch="arm64", requirements=("requests==2.32.3",), cwd=tmp_path,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    built = build_package(options, tmp_path / "a.zip")
    again = build_package(options, tmp_path / "b.zip")
    assert len(calls) == 1  # the second build reuses the cached dependencies
    assert built.sha256 == again.sha256
    command = calls[0]
    for flag, value in [
        ("--platform", "manylinux2014_aarch64"),
        ("--implementation", "cp"),
        ("--python-version", "3.12"),
    ]:
        assert command[command.index(flag) + 1] == value
    assert "--only-binary=:all:" in command and "--no-compile" in command
    assert f"pydantic=={metadata.version('pydantic')}" in command
    assert "requests==2.32.3" in command
    assert not [
        c for c in command if c.startswith(("boto3", "botocore", "typer", "rich", "packaging"))
    ]
    listed = names(built.path)
    assert "pydantic_core/_core.cpython-312-aarch64-linux-gnu.so" in listed
    assert not [n for n in listed if n.startswith("bin/")]
    assert built.platform == "manylinux2014_aarch64"


def test_a_failed_pip_build_says_which_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(pkg.subprocess, "run", failing)
    options = BuildOptions(EXAMPLE, arch="x86_64", cwd=tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(InputError, match="manylinux2014_x86_64: ERROR: No matching"):
        build_package(options, tmp_path / "a.zip")
