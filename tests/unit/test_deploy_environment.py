"""The function's environment gives back the config it was written from, value for value and
type for type: a queue named ``12345`` is a text in the function too, not a number."""

from __future__ import annotations

import datetime
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.config import Settings, load_settings
from northmigrate.deploy.environment import DEPLOYED_KEYS, environment, toml_value
from northmigrate.deploy.intrinsics import ref, resolve
from northmigrate.deploy.template import template_spec
from northmigrate.examples.onboarding import migration

# Texts that read as another TOML type, or as TOML syntax, when written unquoted.
LOOKALIKES = [
    "12345", "-7", "+7", "1_000", "0x10", "0o17", "0b101", "1e3", "1E-3", "3.14", "-0.0",
    "inf", "-inf", "+inf", "nan", "-nan", "true", "false", "2024-01-01", "1979-05-27T07:32:00",
    "1979-05-27T07:32:00Z", "1979-05-27 07:32:00-07:00", "07:32:00", "07:32:00.999999",
    "[1, 2]", "[]", "{a = 1}", "{}", '"quoted"', "'single'", '"""', "a = 1", "# comment",
    "x\ny", "tab\there", "back\\slash", "nul\x00", "del\x7f", "é-ü-ß", "😀", "",
]  # fmt: skip
texts = st.one_of(st.sampled_from(LOOKALIKES), st.text(max_size=20))
zones = st.integers(-1439, 1439).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
datetimes = st.datetimes(
    min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)
)
scalars = st.one_of(
    texts,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(),
    datetimes,
    st.builds(lambda d, z: d.replace(tzinfo=z), datetimes, zones),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)
queue_names = st.one_of(st.sampled_from(LOOKALIKES[:29]), st.text(min_size=1, max_size=80)).filter(
    lambda name: 1 <= len(name) <= 80 and not name.endswith(".fifo")
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down (nan is nan, -0.0 is -0.0, a datetime
    keeps its offset)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, datetime.datetime | datetime.time):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "aws": {
            "retry_mode": draw(st.sampled_from(["standard", "adaptive"])),
            "max_attempts": draw(st.integers(1, 20)),
            "endpoint_url": draw(st.none() | texts.filter(lambda t: "@" not in t and t)),
        },
        "queue": {
            "name": draw(queue_names),
            "dlq_name": draw(st.none() | queue_names),
            "max_receive_count": draw(st.integers(1, 990)),
            "visibility_timeout": draw(st.integers(0, 43_200)),
        },
        "migration": {
            "plugin": draw(texts.filter(lambda t: len(t) >= 3)),
            "options": draw(st.dictionaries(texts, toml_values, max_size=4)),
        },
        "worker": {
            "concurrency": draw(st.integers(1, 512)),
            "backoff_base_s": draw(st.floats(0, 43_200)),
            "backoff_max_s": draw(st.floats(0, 43_200)),
        },
        "guard": {
            "enabled": draw(st.booleans()),
            "window": draw(st.integers(10, 10_000)),
            "min_records": draw(st.integers(1, 10_000)),
            "failure_share": draw(st.floats(0, 1, exclude_min=True)),
        },
    }


def deployed(s: Settings, section: str, key: str) -> Any:
    if (section, key) == ("queue", "dlq_name"):
        return s.queue.dead_letter_name
    return getattr(getattr(s, section), key)


@given(configs())
@settings(max_examples=300, deadline=None)
def test_every_value_reaches_the_function_as_the_type_it_is(config: dict[str, Any]) -> None:
    written = Settings.model_validate(config)
    env = environment(written)
    assert all("\x00" not in value for value in env.values())  # an environment holds no NUL
    read = load_settings(None, env=env)  # what the function does at every cold start
    for section, key in DEPLOYED_KEYS:
        assert same(deployed(read, section, key), deployed(written, section, key)), key
    assert read.aws.endpoint_url == written.aws.endpoint_url


@given(toml_values)
@settings(max_examples=300, deadline=None)
def test_toml_value_reads_back_as_itself(value: Any) -> None:
    import tomllib

    assert same(tomllib.loads(f"v = {toml_value(value)}")["v"], value)


@pytest.mark.parametrize("name", [n for n in LOOKALIKES[:22] if re.fullmatch(r"[\w-]+", n)])
def test_a_queue_named_like_a_toml_value_from_a_config_file(tmp_path: Path, name: str) -> None:
    """The reported case, from a file: ``name = "12345"`` (and a date, a boolean, inf, 1e3,
    0x10, all valid SQS names) loads in the function as the same text."""
    path = tmp_path / "northmigrate.toml"
    path.write_text(
        f'[queue]\nname = "{name}"\n[migration]\nplugin = "x:migration"\n'
        f'[migration.options]\nstart = 2024-01-01\nlimit = inf\nname = "{name}"\n'
    )
    written = load_settings(path, env={})
    read = load_settings(None, env=environment(written))
    assert read.queue.name == name and read.queue.dead_letter_name == f"{name}-dlq"
    assert read.migration.options == {
        "start": datetime.date(2024, 1, 1),
        "limit": math.inf,
        "name": name,
    }


def _substituted(value: Any, parameters: dict[str, str]) -> str:
    """A variable of the template as CloudFormation sets it, parameters at their defaults."""
    if isinstance(value, str):
        return value
    text = value["Fn::Sub"] if "Fn::Sub" in value else "${" + value["Ref"] + "}"
    return re.sub(r"\$\{(\w+)\}", lambda m: parameters[m.group(1)], text)


@pytest.mark.parametrize("name", ["12345", "2024-01-01", "true", "inf", "1e3", "0x10", "nan"])
def test_the_templates_function_reads_its_queue_names_as_texts(tmp_path: Path, name: str) -> None:
    path = tmp_path / "northmigrate.toml"
    path.write_text(
        f'[aws]\nregion = "eu-west-1"\n[queue]\nname = "{name}"\nvisibility_timeout = 180\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
    )
    written = load_settings(path, env={})
    spec = template_spec(written, migration, visibility_timeout=180)
    variables = resolve(spec.environment)
    parameters = {"QueueName": name, "DeadLetterQueueName": f"{name}-dlq"}
    env = {k: _substituted(v, parameters) for k, v in variables.items()}
    read = load_settings(None, env=env)
    assert (read.queue.name, read.queue.dead_letter_name) == (name, f"{name}-dlq")
    assert ref("QueueName") not in str(env)
