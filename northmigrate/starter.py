"""``northmigrate init``: a starter ``northmigrate.toml`` and, with a plugin name, a plugin
skeleton with its test.

The templates ship inside the package (``northmigrate/templates``), so a pip user has them:
``local.toml`` and ``aws.example.toml`` are the repository's ``config/`` files, byte for
byte (a test keeps them equal), every key shown with its default. The plugin skeleton
(``NAME.py``) holds what a safe migration needs: a model, an idempotent conditional write
keyed on the record, ``verify``, sensitive fields, ``setup`` and the role's statements; its
test (``test_NAME.py``) runs against the embedded endpoint. Nothing is overwritten unless
asked (``force``).
"""

from __future__ import annotations

import importlib.util
import keyword
import os
import re
import sys
from importlib import resources
from pathlib import Path

from northmigrate.errors import InputError
from northmigrate.privatefile import open_private

CONFIG_FILE = "northmigrate.toml"
_TEMPLATES = {"local": "local.toml", "aws": "aws.example.toml"}
_EXAMPLE_PLUGIN = "northmigrate.examples.onboarding:migration"
_EXAMPLE_TABLE = 'table = "onboarding-v2"'
_EXAMPLE_QUEUE = "onboarding-migration"
_LOCAL_ENDPOINT = '"http://127.0.0.1:4566"'
_MODULE = re.compile(r"^[a-z_][a-z0-9_]*$")


def template(name: str) -> str:
    """The text of a shipped template (``local.toml``, ``plugin.py.tmpl``, …)."""
    return resources.files("northmigrate").joinpath("templates", name).read_text("utf-8")


def shadowed(name: str, directory: Path | None = None) -> str | None:
    """What ``name`` would hide once ``NAME.py`` sits first on ``sys.path``: "a module of
    Python's standard library", "the installed module NAME (ORIGIN)", or None. A module
    found in ``directory`` (an earlier ``init`` there) hides nothing."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return "a module of Python's standard library"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a broken package of that name is still there
        return f"the installed module {name}"
    if spec is None:
        return None
    origin = spec.origin or next(iter(spec.submodule_search_locations or []), None)
    if origin and directory is not None:
        try:
            if Path(origin).resolve().parent == directory.resolve():
                return None
            if Path(origin).resolve().parent.parent == directory.resolve():
                return None  # a package NAME/ there
        except OSError:
            pass
    return f"the installed module {name} ({origin or 'built in'})"


def check_plugin_name(name: str, directory: Path | None = None) -> str:
    """``name`` when it can be a module name (lower case, digits, underscores) that hides
    no other module: not one of Python's standard library, not one installed here (a
    ``json.py`` next to the config would be imported instead of the real ``json``)."""
    if (
        not _MODULE.match(name)
        or not name.isidentifier()
        or keyword.iskeyword(name)
        or name == "northmigrate"
    ):
        raise InputError(
            f"--plugin {name!r} is not a usable module name",
            hint="lower case letters, digits and underscores, e.g. accounts_v2",
        )
    hidden = shadowed(name, directory)
    if hidden is not None:
        raise InputError(
            f"--plugin {name!r} would hide {hidden}: Python would import one in place of the other",
            hint=f"choose a name of your own, e.g. {name}_migration",
        )
    return name


def starter_files(
    *,
    aws: bool = False,
    plugin: str | None = None,
    port: int | None = None,
    directory: Path | None = None,
) -> dict[str, str]:
    """The files ``init`` writes, by name: the config (its embedded endpoint on ``port``
    when given), and the plugin and its test (``directory``: where they go, see
    ``check_plugin_name``)."""
    config = template(_TEMPLATES["aws" if aws else "local"])
    if port is not None and not aws:
        config = config.replace(_LOCAL_ENDPOINT, f'"http://127.0.0.1:{port}"')
    if plugin is None:
        return {CONFIG_FILE: config}
    check_plugin_name(plugin, directory)
    slug = plugin.replace("_", "-")
    config = config.replace(_EXAMPLE_PLUGIN, f"{plugin}:migration")
    config = config.replace(_EXAMPLE_TABLE, f'table = "{slug}"')
    config = config.replace(_EXAMPLE_QUEUE, f"{slug}-migration")
    fill = {"{{name}}": plugin, "{{table}}": slug}
    files = {CONFIG_FILE: config}
    for out, name in (
        (f"{plugin}.py", "plugin.py.tmpl"),
        (f"test_{plugin}.py", "test_plugin.py.tmpl"),
    ):
        text = template(name)
        for mark, value in fill.items():
            text = text.replace(mark, value)
        files[out] = text
    return files


def write_starter(
    directory: str | Path,
    *,
    aws: bool = False,
    plugin: str | None = None,
    force: bool = False,
    port: int | None = None,
) -> list[Path]:
    """Write the starter files into ``directory``; refuse (InputError, exit 2, nothing
    written) when one exists, unless ``force``. Returns the paths written."""
    root = Path(directory)
    written = starter_files(aws=aws, plugin=plugin, port=port, directory=root)
    files = {root / name: text for name, text in written.items()}
    links = [str(path) for path in files if path.is_symlink()]
    if links:  # refused even with --force, before anything is written
        raise InputError(
            f"refusing to write {', '.join(links)}: a symbolic link (init does not follow "
            "links); nothing written",
            hint="remove it, or run init in another directory",
        )
    existing = [str(path) for path in files if os.path.lexists(path)]
    if existing and not force:
        raise InputError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "nothing written",
            hint="pass --force to overwrite",
        )
    for path, text in files.items():  # a link planted at a name is refused, never followed
        with open_private(path, "starter file") as out:
            out.write(text)
    return list(files)
