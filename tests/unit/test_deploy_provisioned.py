"""The worker's mapping in provisioned mode (``[deploy] min_pollers``/``max_pollers``): the
config, the mapping's settings, deploy and the template, ``tap limit`` through the pollers,
and ``status``. moto keeps ``ProvisionedPollerConfig`` but does not refuse it beside a
maximum concurrency as AWS does, and ministack has no such field: the exact calls are pinned
with botocore's Stubber."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from helpers import aws_client

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.cli.status import _lambda_rows
from northmigrate.config import GuardSettings, Settings, load_settings
from northmigrate.consume.lambda_side import FunctionSide
from northmigrate.consume.mapping import MappingState
from northmigrate.consume.tap import Tap, TapState
from northmigrate.consume.throttle import Throttle
from northmigrate.control.provision import provision
from northmigrate.deploy import stack_spec
from northmigrate.deploy.apply import Deployer, _with_mode
from northmigrate.deploy.environment import environment
from northmigrate.deploy.template import build_template, template_spec
from northmigrate.errors import ConfigError, InputError, Refused
from northmigrate.examples.onboarding import migration

from .test_deploy_apply import fake_package, settings
from .test_throttle import Clock, ok, step, throttled

UUID = "0f9c2e1a-7b3d-4c5e-8f6a-1b2c3d4e5f60"
PROVISIONED = "[deploy]\nmin_pollers = 3\nmax_pollers = 40\n"


def deploy(clients: AwsClients, s: Settings, tmp_path: Path) -> dict[str, Any]:
    spec, _ = stack_spec(clients, s, migration)
    return Deployer(clients, spec, fake_package(tmp_path), sleep=lambda _: None).run().to_dict()


def mapping_of(clients: AwsClients, uuid: str) -> dict[str, Any]:
    return dict(clients.client("lambda").get_event_source_mapping(UUID=uuid))


def tap_of(clients: AwsClients, s: Settings) -> Tap:
    pollers = s.deploy.pollers
    return Tap(
        clients,
        Queues(clients.client("sqs"), s.queue),
        default_limit=s.deploy.max_concurrency,
        default_pollers=pollers[1] if pollers else None,
        sleep=lambda _: None,
    )


# -- the config ---------------------------------------------------------------------------


def test_either_key_turns_provisioned_mode_on_with_aws_defaults_for_the_other(
    tmp_path: Path,
) -> None:
    assert settings(tmp_path).deploy.pollers is None
    assert settings(tmp_path, PROVISIONED).deploy.pollers == (3, 40)
    assert settings(tmp_path, "[deploy]\nmax_pollers = 50\n").deploy.pollers == (2, 50)
    assert settings(tmp_path, "[deploy]\nmin_pollers = 5\n").deploy.pollers == (5, 200)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (PROVISIONED + "max_concurrency = 10\n", "cannot be combined"),
        ("[deploy]\nmin_pollers = 30\nmax_pollers = 20\n", "more than max_pollers"),
        ("[deploy]\nmin_pollers = 1\n", "deploy.min_pollers"),
        ("[deploy]\nmax_pollers = 10001\n", "deploy.max_pollers"),
    ],
)
def test_provisioned_settings_aws_would_refuse_are_config_errors(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, extra)


# -- the mapping's settings and the template ----------------------------------------------


def test_the_mapping_gets_pollers_and_no_maximum_concurrency(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients, s = AwsClients(), settings(tmp_path, PROVISIONED)
    provision(clients, s, migration)
    spec, _ = stack_spec(clients, s, migration)
    wanted = spec.mapping_settings(None)
    assert wanted["ProvisionedPollerConfig"] == {"MinimumPollers": 3, "MaximumPollers": 40}
    assert "ScalingConfig" not in wanted
    # a tap limit is the maximum; the minimum never above it
    assert spec.mapping_settings(2)["ProvisionedPollerConfig"] == {
        "MinimumPollers": 2,
        "MaximumPollers": 2,
    }


def test_the_template_s_mapping_is_in_provisioned_mode(tmp_path: Path) -> None:
    s = settings(tmp_path, '[aws]\nregion = "eu-west-1"\n' + PROVISIONED)
    spec = template_spec(s, migration, visibility_timeout=s.queue.visibility_timeout)
    body = build_template(s, spec, code_uri="stack.zip", queues=True, tap=TapState(limit=25))
    props = body["Resources"]["WorkerQueueMapping"]["Properties"]
    assert props["ProvisionedPollerConfig"] == {"MinimumPollers": 3, "MaximumPollers": 25}
    assert "ScalingConfig" not in props
    pytest.importorskip("cfnlint.api")
    from .test_deploy_template import lint

    assert lint(tmp_path, body) == []


def test_the_function_knows_what_its_mapping_is_capped_at(tmp_path: Path) -> None:
    """The guard on Lambda lowers from the mapping's cap and puts it back: the function's
    environment carries the pollers (provisioned) or the maximum concurrency, never both."""
    env = environment(settings(tmp_path, PROVISIONED))
    assert env["NORTHMIGRATE_DEPLOY__MIN_POLLERS"] == "3"
    assert env["NORTHMIGRATE_DEPLOY__MAX_POLLERS"] == "40"
    assert "NORTHMIGRATE_DEPLOY__MAX_CONCURRENCY" not in env
    assert load_settings(None, env=env).deploy.pollers == (3, 40)
    plain = environment(settings(tmp_path, "[deploy]\nmax_concurrency = 25\n"))
    assert plain["NORTHMIGRATE_DEPLOY__MAX_CONCURRENCY"] == "25"
    assert load_settings(None, env=plain).deploy.max_concurrency == 25


# -- deploy -------------------------------------------------------------------------------


def test_deploy_creates_the_mapping_in_provisioned_mode_and_is_idempotent(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients, s = AwsClients(), settings(tmp_path, PROVISIONED)
    provision(clients, s, migration)
    first = deploy(clients, s, tmp_path)
    mapping = mapping_of(clients, first["mapping_uuid"])
    assert mapping["ProvisionedPollerConfig"] == {"MinimumPollers": 3, "MaximumPollers": 40}
    assert not mapping.get("ScalingConfig")
    again = deploy(clients, s, tmp_path)
    assert {c["resource"]: c["action"] for c in again["changes"]}["mapping"] == "unchanged"


def test_an_on_demand_mapping_moved_to_provisioned_loses_its_maximum_concurrency(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients = AwsClients()
    provision(clients, settings(tmp_path), migration)
    uuid = deploy(clients, settings(tmp_path), tmp_path)["mapping_uuid"]
    assert mapping_of(clients, uuid)["ScalingConfig"] == {"MaximumConcurrency": 10}
    report = deploy(clients, settings(tmp_path, PROVISIONED), tmp_path)
    change = {c["resource"]: c for c in report["changes"]}["mapping"]
    assert sorted(change["changed"]) == ["ProvisionedPollerConfig", "ScalingConfig"]
    mapping = mapping_of(clients, uuid)
    assert not mapping.get("ScalingConfig")
    assert mapping["ProvisionedPollerConfig"] == {"MinimumPollers": 3, "MaximumPollers": 40}


def test_deploy_calls_aws_with_pollers_and_an_emptied_scaling_config(tmp_path: Path) -> None:
    """What AWS receives, pinned: never a maximum concurrency beside a poller config."""
    current = {"UUID": "u", "ScalingConfig": {"MaximumConcurrency": 10}}
    wanted = {
        "BatchSize": 10,
        "ProvisionedPollerConfig": {"MinimumPollers": 2, "MaximumPollers": 9},
    }
    assert _with_mode(current, wanted, "q -> f") == {**wanted, "ScalingConfig": {}}
    with pytest.raises(Refused, match="provisioned mode"):
        _with_mode({"ProvisionedPollerConfig": {"MaximumPollers": 9}}, {"BatchSize": 10}, "q")


def test_deploy_refuses_to_turn_provisioned_mode_off(mocked_aws: None, tmp_path: Path) -> None:
    clients = AwsClients()
    provision(clients, settings(tmp_path), migration)
    uuid = deploy(clients, settings(tmp_path, PROVISIONED), tmp_path)["mapping_uuid"]
    with pytest.raises(Refused, match="does not turn that off"):
        deploy(clients, settings(tmp_path), tmp_path)
    assert mapping_of(clients, uuid)["ProvisionedPollerConfig"]["MaximumPollers"] == 40


# -- the tap ------------------------------------------------------------------------------


def test_tap_limit_works_through_the_pollers(mocked_aws: None, tmp_path: Path) -> None:
    clients, s = AwsClients(), settings(tmp_path, PROVISIONED)
    provision(clients, s, migration)
    uuid = deploy(clients, s, tmp_path)["mapping_uuid"]
    tap = tap_of(clients, s)
    limited = tap.limit(2)
    assert limited.state.limit == 2
    mapping = mapping_of(clients, uuid)
    assert mapping["ProvisionedPollerConfig"] == {"MinimumPollers": 2, "MaximumPollers": 2}
    assert not mapping.get("ScalingConfig")
    assert [(m.mode, m.max_pollers) for m in limited.mappings] == [("provisioned", 2)]
    assert tap.limit(5000).mappings[0].max_pollers == 5000  # beyond 1000: pollers only
    lifted = tap.limit(None)
    assert lifted.state.limit is None and lifted.mappings[0].max_pollers == 40
    data = tap.status().to_dict()["mappings"][0]
    assert data["mode"] == "provisioned" and data["max_concurrency"] is None
    # a deploy under a tap limit keeps it
    tap.limit(7)
    deploy(clients, s, tmp_path)
    assert mapping_of(clients, uuid)["ProvisionedPollerConfig"]["MaximumPollers"] == 7


def test_the_guard_s_limit_works_through_the_pollers(mocked_aws: None, tmp_path: Path) -> None:
    """Throttling on a provisioned mapping: the guard lowers from the mapping's maximum
    pollers, halves them, raises them back, and never sets a maximum concurrency."""
    clients, s = AwsClients(), settings(tmp_path, PROVISIONED)
    provision(clients, s, migration)
    uuid = deploy(clients, s, tmp_path)["mapping_uuid"]
    tap = tap_of(clients, s)
    assert tap.cap() == 40
    clock = Clock()
    options = GuardSettings(throttle_step_s=10, throttle_outage_s=60)
    throttle = Throttle(
        options, tap, by="guard (lambda f)", start=lambda rate: tap.cap() or 10, clock=clock
    )
    pollers = []
    for outcomes in ([throttled(), ok()], [throttled()], [ok()], [ok()], [ok()], [ok()]):
        step(throttle, clock, outcomes)
        mapping = mapping_of(clients, uuid)
        assert not mapping.get("ScalingConfig"), mapping
        pollers.append(mapping["ProvisionedPollerConfig"]["MaximumPollers"])
    assert pollers == [20, 10, 15, 22, 33, 40]  # halved, raised by half, then lifted
    assert tap.state().limit is None
    assert mapping_of(clients, uuid)["ProvisionedPollerConfig"]["MinimumPollers"] == 3


def test_the_guard_lowers_and_gives_back_pollers_above_1000(
    mocked_aws: None, tmp_path: Path
) -> None:
    """A provisioned mapping may hold up to 10,000 pollers: the guard halves them and raises
    them back to where they were, never stopping at on-demand's 1,000."""
    clients, s = AwsClients(), settings(tmp_path, "[deploy]\nmin_pollers = 3\nmax_pollers = 4000\n")
    provision(clients, s, migration)
    uuid = deploy(clients, s, tmp_path)["mapping_uuid"]
    tap = tap_of(clients, s)
    clock = Clock()
    options = GuardSettings(throttle_step_s=10, throttle_outage_s=60)
    throttle = Throttle(
        options, tap, by="guard (lambda f)", start=lambda rate: tap.cap() or 10, clock=clock
    )
    pollers = []
    for outcomes in ([throttled(), ok()], [ok()], [ok()]):
        step(throttle, clock, outcomes)
        pollers.append(mapping_of(clients, uuid)["ProvisionedPollerConfig"]["MaximumPollers"])
    assert pollers == [2000, 3000, 4000]
    assert tap.state().limit is None


def test_an_on_demand_mapping_takes_no_limit_above_1000(mocked_aws: None, tmp_path: Path) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    provision(clients, s, migration)
    deploy(clients, s, tmp_path)
    with pytest.raises(InputError, match="2 to 1000"):
        tap_of(clients, s).limit(1500)
    assert tap_of(clients, s).status().state.limit is None  # nothing changed


def test_tap_limit_calls_aws_with_the_pollers_only(mocked_aws: None, tmp_path: Path) -> None:
    """The update AWS receives for a provisioned mapping, pinned with the Stubber."""
    clients, s = AwsClients(), settings(tmp_path, PROVISIONED)
    provision(clients, s, migration)
    queues = Queues(clients.client("sqs"), s.queue)
    lam = aws_client("lambda", region_name="us-east-1")
    mapping = {
        "UUID": UUID,
        "State": "Enabled",
        "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders-worker",
        "ProvisionedPollerConfig": {"MinimumPollers": 3, "MaximumPollers": 40},
    }
    clients._clients["lambda"] = lam
    with Stubber(lam) as stub:
        stub.add_response("list_event_source_mappings", {"EventSourceMappings": [mapping]})
        stub.add_response("get_event_source_mapping", mapping, {"UUID": UUID})
        stub.add_response(
            "update_event_source_mapping",
            mapping,
            {
                "UUID": UUID,
                "ProvisionedPollerConfig": {"MinimumPollers": 3, "MaximumPollers": 12},
            },
        )
        stub.add_response("list_event_source_mappings", {"EventSourceMappings": [mapping]})
        Tap(clients, queues, default_pollers=40, sleep=lambda _: None).limit(12)
        stub.assert_no_pending_responses()


# -- status -------------------------------------------------------------------------------


def test_status_shows_the_mapping_s_mode() -> None:
    provisioned = MappingState("u", "f", "Enabled", True, None, 3, 40)
    on_demand = MappingState("v", "g", "Enabled", True, 10)
    rows = _lambda_rows([FunctionSide("f", provisioned, 15), FunctionSide("g", on_demand, 15)])
    shown = dict(rows)
    assert shown["lambda f"] == "mapping enabled, provisioned (limit pollers 3-40)"
    assert shown["lambda g"] == "mapping enabled, on-demand (limit 10)"
    assert provisioned.to_dict()["mode"] == "provisioned"
