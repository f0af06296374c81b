from __future__ import annotations

from pathlib import Path

import pytest

from northmigrate.config import load_settings
from northmigrate.errors import ConfigError

MINIMAL = """
[queue]
name = "q"
[migration]
plugin = "m:x"
"""


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_derived_dlq_name(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), env={})
    assert settings.queue.dead_letter_name == "q-dlq"
    assert settings.queue.max_receive_count == 5
    assert settings.worker.concurrency == 8
    assert not settings.queue.fifo


def test_fifo_dlq_keeps_suffix_last(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "q"', 'name = "q.fifo"')
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.queue.fifo
    assert settings.queue.dead_letter_name == "q-dlq.fifo"


def test_lookup_order_explicit_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, MINIMAL.replace('"q"', '"from-cwd"'), "northmigrate.toml")
    env_file = write(tmp_path, MINIMAL.replace('"q"', '"from-env"'), "env.toml")
    explicit = write(tmp_path, MINIMAL.replace('"q"', '"explicit"'), "explicit.toml")
    env = {"NORTHMIGRATE_CONFIG": str(env_file)}
    assert load_settings(explicit, env=env).queue.name == "explicit"
    assert load_settings(None, env=env).queue.name == "from-env"
    assert load_settings(None, env={}).queue.name == "from-cwd"


def test_env_overrides_single_keys_with_toml_values(tmp_path: Path) -> None:
    env = {
        "NORTHMIGRATE_QUEUE__MAX_RECEIVE_COUNT": "9",
        "NORTHMIGRATE_AWS__ENDPOINT_URL": "http://127.0.0.1:9",
        "NORTHMIGRATE_MIGRATION__OPTIONS__REGIONS": '["ON", "QC"]',
        "NORTHMIGRATE_OUTPUT": "json",  # not a config key
    }
    settings = load_settings(write(tmp_path, MINIMAL), env=env)
    assert settings.queue.max_receive_count == 9
    assert settings.aws.endpoint_url == "http://127.0.0.1:9"
    assert settings.migration.options["regions"] == ["ON", "QC"]


def test_config_from_environment_only() -> None:
    env = {"NORTHMIGRATE_QUEUE__NAME": "q", "NORTHMIGRATE_MIGRATION__PLUGIN": "m:x"}
    assert load_settings(None, env=env).queue.name == "q"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "[worker]\nconcurency = 3\n", "unknown key worker.concurency"),
        (MINIMAL + "[worker]\nconcurrency = 'many'\n", "invalid value for worker.concurrency"),
        (MINIMAL.replace("max", "") + "[aws]\nregion = 5\n", "invalid value for aws.region"),
        ('[migration]\nplugin = "m:x"\n', "missing required key queue"),
        ('[queue]\nname = "q"\n[migration]\n', "missing required key migration.plugin"),
        (
            MINIMAL.replace('name = "q"', 'name = "q"\nmax_receive_count = 0'),
            "queue.max_receive_count",
        ),
        (MINIMAL + "[queue.extra]\n", "unknown key queue.extra"),
        (MINIMAL + "[worker\n", "is not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={})
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_fifo_queue_with_standard_dlq_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "q"', 'name = "q.fifo"\ndlq_name = "plain-dlq"')
    with pytest.raises(ConfigError, match=r"queue\.dlq_name"):
        load_settings(write(tmp_path, text), env={})


def test_missing_file_and_no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="no configuration found"):
        load_settings(None, env={})


@pytest.mark.parametrize("name", ["local.toml", "aws.example.toml"])
def test_the_shipped_configs_load(name: str) -> None:
    """config/ documents every key: each file must stay a valid config."""
    settings = load_settings(Path(__file__).parents[2] / "config" / name, env={})
    assert settings.queue.sqs_max_receive_count > settings.queue.max_receive_count
