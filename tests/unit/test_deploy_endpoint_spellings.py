"""An endpoint that is this machine, however it is spelled, and an endpoint that carries a
password: the first is refused for a template (a function in AWS cannot reach it), the second
never reaches a template, the function's environment or an output."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import botocore.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from northmigrate.aws.clients import host_address, is_loopback, shown_url, translate
from northmigrate.config import Settings, load_settings
from northmigrate.deploy import check_endpoint
from northmigrate.deploy.spec import build_spec
from northmigrate.errors import ConfigError
from northmigrate.examples.onboarding import migration
from tests.helpers import run_cli

PASSWORD = "s3cr3t-Pa55"


def _part(value: int, base: str) -> str:
    return {"dec": str(value), "hex": hex(value), "HEX": f"0X{value:X}", "oct": f"0{value:o}"}[base]


@st.composite
def ipv4_spellings(draw: st.DrawFn, network: str) -> tuple[str, ipaddress.IPv4Address]:
    """An address of ``network`` in one of the forms inet_aton (and so the resolver) reads:
    a.b.c.d, a.b.c (c: 16 bits), a.b (b: 24 bits), a (32 bits), each part decimal, hex or
    octal, with a trailing dot or not."""
    net = ipaddress.IPv4Network(network)
    address = net[draw(st.integers(0, net.num_addresses - 1))]
    value = int(address)
    octets = list(address.packed)
    shape = draw(st.sampled_from([4, 3, 2, 1]))
    if shape == 4:
        numbers = octets
    elif shape == 3:
        numbers = [octets[0], octets[1], value & 0xFFFF]
    elif shape == 2:
        numbers = [octets[0], value & 0xFFFFFF]
    else:
        numbers = [value]
    bases = st.sampled_from(["dec", "hex", "HEX", "oct"])
    text = ".".join(_part(n, draw(bases)) for n in numbers)
    return text + draw(st.sampled_from(["", "."])), address


def _url(host: str, user: bool) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{'me:' + PASSWORD + '@' if user else ''}{host}:4566/"


@given(
    st.one_of(ipv4_spellings("127.0.0.0/8"), ipv4_spellings("0.0.0.0/32")),
    st.sampled_from(["v4", "mapped", "mapped-hex"]),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_every_spelling_of_this_machine_is_loopback(
    spelled: tuple[str, ipaddress.IPv4Address], form: str, user: bool
) -> None:
    text, address = spelled
    # the oracle: what the system's resolver makes of the text (when it takes it at all)
    try:
        info = socket.getaddrinfo(text, None, socket.AF_INET, flags=socket.AI_NUMERICHOST)
        assert ipaddress.IPv4Address(info[0][4][0]) == address
    except socket.gaierror:
        pass  # a trailing dot: refused here, but a name lookup may take it
    host = {
        "v4": text,
        "mapped": f"::ffff:{address}",
        "mapped-hex": f"::ffff:{int(address) >> 16:x}:{int(address) & 0xFFFF:x}",
    }[form]
    assert host_address(host.strip(".")) is not None
    assert is_loopback(_url(host, user)), host


@given(ipv4_spellings("8.8.0.0/16"), st.booleans())
@settings(max_examples=200, deadline=None)
def test_other_addresses_in_any_spelling_are_not(
    spelled: tuple[str, ipaddress.IPv4Address], user: bool
) -> None:
    text, address = spelled
    assert host_address(text) == address
    assert not is_loopback(_url(text, user))
    assert not is_loopback(_url(f"::ffff:{address}", user))


@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "localhost.",
        "LocalHost",
        "sqs.localhost.",
        "localhost.localdomain",
        "ip6-localhost",
        "::ffff:127.0.0.1",
        "0:0:0:0:0:0:0:1",
        "::1%lo",
        "::",
        "0",
        "127.0.0.1.",
    ],
)
def test_the_reported_spellings_are_refused_for_a_template(tmp_path: Path, host: str) -> None:
    s = with_endpoint(tmp_path, _url(host, user=False))
    with pytest.raises(ConfigError, match="is a loopback address"):
        check_endpoint(s, keep_local_endpoint=False)


@pytest.mark.parametrize(
    "host", ["10.0.0.7", "sqs.eu-west-1.amazonaws.com", "localhost.example.com", "fe80::1", "::2"]
)
def test_other_hosts_are_kept(tmp_path: Path, host: str) -> None:
    url = _url(host, user=False)
    assert check_endpoint(with_endpoint(tmp_path, url), keep_local_endpoint=False) == url


def with_endpoint(tmp_path: Path, url: str) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[aws]\nregion = "eu-west-1"\nendpoint_url = "{url}"\n'
        '[queue]\nname = "orders"\nvisibility_timeout = 180\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
    )
    return load_settings(path, env={})


@pytest.mark.parametrize(
    "url",
    [
        f"http://me:{PASSWORD}@10.0.0.7:4566",
        f"http://{PASSWORD}@10.0.0.7:4566",
        f"http://me:{PASSWORD}@localhost:4566",
        f"https://me:{PASSWORD}@[::1]:4566/path",
    ],
)
def test_an_endpoint_with_a_password_never_reaches_the_function_or_a_message(
    tmp_path: Path, url: str
) -> None:
    s = with_endpoint(tmp_path, url)
    arn = "arn:aws:sqs:eu-west-1:111122223333:orders"
    with pytest.raises(ConfigError, match="holds a user name or password") as caught:
        build_spec(s, migration, queue_arn=arn, dlq_arn=arn + "-dlq", visibility_timeout=180)
    assert PASSWORD not in str(caught.value) + str(caught.value.hint)
    try:
        check_endpoint(s, keep_local_endpoint=False)
    except ConfigError as exc:  # a loopback one: refused, and the message hides it too
        assert PASSWORD not in str(exc)
    failure = botocore.exceptions.EndpointConnectionError(endpoint_url=url)
    assert PASSWORD not in str(translate(failure, "SQS GetQueueUrl"))
    assert PASSWORD not in shown_url(url) and "***@" in shown_url(url)


@pytest.mark.parametrize("keep", [[], ["--keep-local-endpoint"]])
@pytest.mark.parametrize("host", ["10.0.0.7", "127.0.0.1"])
def test_deploy_template_writes_no_password(tmp_path: Path, keep: list[str], host: str) -> None:
    with_endpoint(tmp_path, f"http://me:{PASSWORD}@{host}:4566")
    (tmp_path / "c.toml").rename(tmp_path / "northmigrate.toml")
    result = run_cli(tmp_path, ["deploy", "--template", "stack.json", *keep, "--output", "json"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "stack.json").exists()
