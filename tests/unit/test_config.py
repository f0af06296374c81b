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


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env=env or {})
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_a_bad_environment_variable_is_named_not_the_file(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL, {"NORTHMIGRATE_QUEUE__MAX_RECIEVE_COUNT": "8"})
    assert message == (
        "unknown key queue.max_recieve_count, set by NORTHMIGRATE_QUEUE__MAX_RECIEVE_COUNT "
        "(did you mean max_receive_count?)"
    )
    message = error_of(tmp_path, MINIMAL, {"NORTHMIGRATE_WORKER__CONCURRENCY": "many"})
    assert message.startswith(
        "invalid value for worker.concurrency, set by NORTHMIGRATE_WORKER__CONCURRENCY: "
    )
    assert "c.toml" not in message


def test_a_bad_key_in_the_file_names_its_line(tmp_path: Path) -> None:
    text = MINIMAL + "\n[worker]\nconcurency = 3\n"
    assert error_of(tmp_path, text) == (
        f"unknown key worker.concurency in {tmp_path / 'c.toml'} line 8 (did you mean concurrency?)"
    )
    text = MINIMAL + "\n[worker]\n# how many\nconcurrency = 'x'\n"
    assert error_of(tmp_path, text).startswith(
        f"invalid value for worker.concurrency in {tmp_path / 'c.toml'} line 9: "
    )


def test_an_unknown_section_is_flagged_with_the_nearest_name(tmp_path: Path) -> None:
    text = MINIMAL.replace("[queue]", "[queeu]")
    assert error_of(tmp_path, text) == (
        f"unknown section [queeu] in {tmp_path / 'c.toml'} line 2 (did you mean [queue]?)"
    )
    assert error_of(tmp_path, MINIMAL + "[nonsense]\nx = 1\n") == (
        f"unknown section [nonsense] in {tmp_path / 'c.toml'} line 6"
    )
    env = {"NORTHMIGRATE_WORKR__CONCURRENCY": "3"}
    assert error_of(tmp_path, MINIMAL, env) == (
        "unknown section [workr], set by NORTHMIGRATE_WORKR__CONCURRENCY (did you mean [worker]?)"
    )


def test_no_configuration_points_to_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={"AWS_REGION": "eu-west-1"})
    assert "northmigrate init" in str(caught.value)
    assert "config/local.toml" not in str(caught.value)


REGIONAL = '[aws]\nregion = "eu-west-1"\nprofile = "from-file"\n' + MINIMAL


@pytest.mark.parametrize(
    ("env", "region", "origin"),
    [
        ({}, "eu-west-1", "aws.region in {file} line 2"),
        ({"NORTHMIGRATE_AWS__REGION": "ca-central-1"}, "ca-central-1", "NORTHMIGRATE_AWS__REGION"),
        ({"AWS_DEFAULT_REGION": "us-west-1"}, "us-west-1", "AWS_DEFAULT_REGION"),
        ({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-1"}, "us-west-2", "AWS_REGION"),
        (
            {"AWS_REGION": "us-west-2", "NORTHMIGRATE_AWS__REGION": "ca-central-1"},
            "us-west-2",
            "AWS_REGION",
        ),
    ],
)
def test_region_environment_beats_the_config(
    tmp_path: Path, env: dict[str, str], region: str, origin: str
) -> None:
    """The AWS CLI's order: flag (the CLI's --region), environment, config."""
    settings = load_settings(write(tmp_path, REGIONAL), env=env)
    assert settings.aws.region == region
    assert settings.aws_origins["region"] == origin.format(file=tmp_path / "c.toml")


def test_profile_and_endpoint_follow_the_same_rule(tmp_path: Path) -> None:
    env = {"AWS_PROFILE": "night", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    settings = load_settings(write(tmp_path, REGIONAL), env=env)
    assert (settings.aws.profile, settings.aws.endpoint_url) == ("night", "http://127.0.0.1:9")
    assert settings.aws_origins["profile"] == "AWS_PROFILE"
    flagged = settings.with_aws("--profile", profile="day", region=None)
    assert flagged.aws.profile == "day"
    assert flagged.aws.region == "eu-west-1"
    assert flagged.aws_origins["profile"] == "--profile"
