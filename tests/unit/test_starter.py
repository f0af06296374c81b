"""``init``'s starter files: the shipped configs are config/*.toml, with every key; the
plugin skeleton is a valid, lint-clean plugin."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from northmigrate.config import Settings, load_settings
from northmigrate.errors import InputError
from northmigrate.starter import _MODULE, starter_files, template, write_starter
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
# Keys a person never sets: deploy writes guard.mapping_uuid into the function's environment.
NOT_FOR_PEOPLE = {("guard", "mapping_uuid")}


@pytest.mark.parametrize(
    ("shipped", "repo"), [("local.toml", "local.toml"), ("aws.example.toml", "aws.example.toml")]
)
def test_the_shipped_templates_are_the_repositorys_configs(shipped: str, repo: str) -> None:
    assert template(shipped) == (ROOT / "config" / repo).read_text(encoding="utf-8")


@pytest.mark.parametrize("aws", [False, True])
def test_init_writes_the_template_and_every_key_is_in_it(tmp_path: Path, aws: bool) -> None:
    [path] = write_starter(tmp_path, aws=aws)
    text = path.read_text()
    assert text == template("aws.example.toml" if aws else "local.toml")
    load_settings(path, env={})
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if section == "source_path" or not isinstance(model, type):
            continue
        keys = getattr(model, "model_fields", {})
        assert f"[{section}]" in text
        for key in keys:
            if (section, key) not in NOT_FOR_PEOPLE and key != "options":
                assert f"{key} =" in text, f"{section}.{key} is not in {path.name}"


def test_existing_files_are_refused_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "northmigrate.toml").write_text("mine\n")
    with pytest.raises(InputError, match="already exists; nothing written") as caught:
        write_starter(tmp_path, plugin="accounts")
    assert caught.value.exit_code == 2
    assert (tmp_path / "northmigrate.toml").read_text() == "mine\n"
    assert not (tmp_path / "accounts.py").exists()
    written = write_starter(tmp_path, plugin="accounts", force=True)
    assert [p.name for p in written] == ["northmigrate.toml", "accounts.py", "test_accounts.py"]


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_planted_at_a_name_is_refused_and_never_followed(
    tmp_path: Path, force: bool, dangling: bool
) -> None:
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious\n")
    (tmp_path / "accounts.py").symlink_to(victim)
    with pytest.raises(InputError, match="a symbolic link") as caught:
        write_starter(tmp_path, plugin="accounts", force=force)
    assert caught.value.exit_code == 2
    if dangling:
        assert not victim.exists()  # not created through the link
    else:
        assert victim.read_text() == "precious\n"  # not overwritten through the link
    assert not (tmp_path / "northmigrate.toml").exists()  # nothing written at all


@pytest.mark.parametrize("name", ["Accounts", "2fast", "class", "my-plugin", "northmigrate", ""])
def test_a_plugin_name_must_be_a_module_name(name: str) -> None:
    with pytest.raises(InputError, match="not a usable module name"):
        starter_files(plugin=name)


@pytest.mark.parametrize("name", ["Ünï", "a.b", "a b", "x\u0660", "_\u00b2", "caf\u00e9"])
def test_a_plugin_name_that_is_no_identifier_is_refused(name: str) -> None:
    with pytest.raises(InputError, match="not a usable module name"):
        starter_files(plugin=name)


def _installed_modules() -> list[str]:
    """Top-level modules of the distributions installed here that could be a plugin name
    (and that import: a distribution may list names of files that are no module)."""
    names = importlib.metadata.packages_distributions()
    return sorted(
        n
        for n in names
        if _MODULE.match(n) and n != "northmigrate" and importlib.util.find_spec(n) is not None
    )


def test_a_plugin_name_that_hides_a_standard_or_installed_module_is_refused(
    tmp_path: Path,
) -> None:
    """Every name of the standard library and every top-level module installed here: a
    NAME.py next to the config would be imported in place of the real one."""
    stdlib = sorted(n for n in sys.stdlib_module_names if _MODULE.match(n))
    installed = _installed_modules()
    assert {"json", "os", "sys", "typing"} <= set(stdlib) and {"pydantic", "boto3"} <= set(
        installed
    )
    for name in stdlib + installed:
        with pytest.raises(InputError, match=f"--plugin '{name}' would hide") as caught:
            write_starter(tmp_path, plugin=name)
        assert caught.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("name", ["json", "os", "sys", "pydantic", "typer"])
def test_init_refuses_a_shadowing_plugin_name_with_a_clear_error(tmp_path: Path, name: str) -> None:
    result = run_cli(tmp_path, ["init", "--plugin", name])
    assert result.returncode == 2
    assert f"--plugin '{name}' would hide" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / f"{name}.py").exists() and not (tmp_path / "northmigrate.toml").exists()


def test_init_again_with_force_accepts_its_own_earlier_plugin(tmp_path: Path) -> None:
    """The plugin an earlier init wrote is found on sys.path too: it hides nothing."""
    write_starter(tmp_path, plugin="acme_ledger")
    sys.path.insert(0, str(tmp_path))
    try:
        assert write_starter(tmp_path, plugin="acme_ledger", force=True)
    finally:
        sys.path.remove(str(tmp_path))


def test_the_config_names_the_plugin_and_its_table(tmp_path: Path) -> None:
    files = starter_files(plugin="acme_accounts")
    config = tomllib.loads(files["northmigrate.toml"])
    assert config["migration"]["plugin"] == "acme_accounts:migration"
    assert config["migration"]["options"]["table"] == "acme-accounts"
    assert config["queue"]["name"] == "acme-accounts-migration"
    assert 'DEFAULT_TABLE = "acme-accounts"' in files["acme_accounts.py"]
    assert "import acme_accounts as plugin" in files["test_acme_accounts.py"]


def test_the_skeleton_is_lint_clean_and_loads(tmp_path: Path) -> None:
    write_starter(tmp_path, plugin="acme_accounts")
    lint = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--select",
            "E,F,W,I,B,UP",
            "--line-length",
            "100",
            "--config",
            "lint.isort.known-first-party = ['acme_accounts']",  # as ruff finds it in a project
            "acme_accounts.py",
            "test_acme_accounts.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    from northmigrate.plugin import load_migration

    migration = load_migration("acme_accounts:migration", cwd=tmp_path)
    assert migration.key == "record_id"
    assert migration.sensitive == ("email", "name")
    assert migration.verify is not None and migration.setup is not None
    sys.modules.pop("acme_accounts", None)
