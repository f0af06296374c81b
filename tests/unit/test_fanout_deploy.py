"""The fan-out's resources (``deploy.fan_out``): deployed on in-process moto (the enqueue
function, the state machine, two least-privilege roles), idempotent, destroyed; the same
resources in the SAM template, checked by cfn-lint and the SAM translator."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.config import Settings, load_settings
from northmigrate.control.provision import provision
from northmigrate.deploy import fanout, stack_spec
from northmigrate.deploy.apply import Deployer
from northmigrate.deploy.destroy import destroy
from northmigrate.deploy.fanout_template import outputs, resources, template_fan_out
from northmigrate.deploy.package import Package, code_sha256
from northmigrate.deploy.spec import StackSpec, build_spec
from northmigrate.deploy.template import build_template, template_spec
from northmigrate.errors import ConfigError
from northmigrate.examples.onboarding import migration

FAN_OUT = (
    'fan_out = true\nfan_out_bucket = "fan-store"\n'
    'fan_out_sources = ["s3://old-exports/onboarding/", "s3://more-exports"]\n'
)


def settings(tmp_path: Path, deploy: str = FAN_OUT, region: str = "us-east-1") -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[aws]\nregion = "{region}"\n[queue]\nname = "orders"\nvisibility_timeout = 120\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
        '[migration.options]\ntable = "target"\n[deploy]\n' + deploy
    )
    return load_settings(path, env={})


def fake_package(tmp_path: Path) -> Package:
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("northmigrate/x.py", (1980, 1, 1, 0, 0, 0)), "x")
    data = path.read_bytes()
    return Package(path, code_sha256(data), len(data), 1, (), "host")


def deploy(clients: AwsClients, s: Settings, package: Package) -> dict[str, str]:
    spec, _ = stack_spec(clients, s, migration)
    fan = fanout.fan_out_spec(s, spec)
    assert fan is not None
    Deployer(clients, spec, package, sleep=lambda _: None).run()
    changes = fanout.apply(clients, fan, package, sleep=lambda _: None)
    return {c.resource + (":" + c.name if c.resource == "role" else ""): c.action for c in changes}


def test_deploy_adds_the_enqueue_function_and_the_state_machine_then_changes_nothing(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    provision(clients, s, migration)
    first = deploy(clients, s, fake_package(tmp_path))
    assert first == {
        "role:orders-enqueue-role": "created",
        "log_group": "created",
        "function": "created",
        "role:orders-fan-out-role": "created",
        "state_machine": "created",
    }
    lam, sfn = clients.client("lambda"), clients.client("stepfunctions")
    fn = lam.get_function(FunctionName="orders-enqueue")["Configuration"]
    assert fn["Handler"] == "northmigrate.enqueue.child.handler" and fn["Timeout"] == 900
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:orders-fan-out"
    machine = sfn.describe_state_machine(stateMachineArn=arn)
    task = json.loads(machine["definition"])["States"]["Shards"]["ItemProcessor"]["States"]
    assert task["Enqueue"]["Parameters"]["FunctionName"] == fn["FunctionArn"]
    assert machine["roleArn"].endswith(":role/orders-fan-out-role")
    again = deploy(clients, s, fake_package(tmp_path))
    assert set(again.values()) == {"unchanged"}

    report = destroy(clients, s, sleep=lambda _: None)
    gone = {(c.resource, c.name) for c in report.changes if c.action == "deleted"}
    assert {
        ("state_machine", "orders-fan-out"),
        ("function", "orders-enqueue"),
        ("role", "orders-enqueue-role"),
        ("role", "orders-fan-out-role"),
        ("log_group", "/aws/lambda/orders-enqueue"),
    } <= gone
    assert sfn.list_state_machines()["stateMachines"] == []


def spec_of(s: Settings) -> StackSpec:
    """The worker's spec as ``deploy`` builds it from the queues, without AWS."""
    arn = "arn:aws:sqs:us-east-1:123456789012:"
    return build_spec(
        s, migration, queue_arn=arn + "orders", dlq_arn=arn + "orders-dlq", visibility_timeout=120
    )


def test_the_roles_hold_least_privilege(tmp_path: Path) -> None:
    s = settings(tmp_path)
    fan = fanout.fan_out_spec(s, spec_of(s))
    assert fan is not None
    for policy in (fan.function.policy, fan.machine_role.policy):
        for statement in policy["Statement"]:
            actions = statement["Action"]
            assert all("*" not in action for action in actions), statement
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            assert all(r != "*" and not r.endswith(":::*") for r in resources), statement
    by_sid = {st["Sid"]: st for st in fan.function.policy["Statement"]}
    assert by_sid["ReadSources"]["Resource"] == [
        "arn:aws:s3:::more-exports/*",
        "arn:aws:s3:::old-exports/onboarding/*",
    ]
    assert by_sid["ListSource0"]["Condition"] == {"StringLike": {"s3:prefix": ["onboarding/*"]}}
    assert by_sid["RunStore"]["Resource"] == "arn:aws:s3:::fan-store/northmigrate/fan-out/*"
    assert by_sid["SendToMainQueue"]["Action"] == [
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
    ]
    machine = {st["Sid"]: st for st in fan.machine_role.policy["Statement"]}
    account = "arn:aws:states:us-east-1:123456789012"
    assert machine["RunMapChildren"]["Resource"] == f"{account}:stateMachine:orders-fan-out"
    assert machine["FollowMapChildren"]["Resource"] == f"{account}:execution:orders-fan-out/*"


@pytest.mark.parametrize(
    ("deploy_section", "message"),
    [
        ("fan_out = true\n", "fan_out_bucket"),
        ('fan_out = true\nfan_out_bucket = "b-store"\n', "fan_out_sources"),
        (
            'fan_out = true\nfan_out_bucket = "b-store"\nfan_out_sources = ["exports/"]\n',
            "not an s3:// URI",
        ),
    ],
)
def test_a_fan_out_without_what_it_needs_is_a_config_error(
    tmp_path: Path, deploy_section: str, message: str
) -> None:
    s = settings(tmp_path, deploy_section)
    with pytest.raises(ConfigError, match=message):
        fanout.fan_out_spec(s, spec_of(s))


def test_the_state_machine_retries_a_shard_but_not_a_source_it_cannot_read() -> None:
    body = fanout.definition("arn:fn", 7)
    shards = body["States"]["Shards"]
    assert shards["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert shards["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert shards["MaxConcurrency"] == 7 and shards["ToleratedFailurePercentage"] == 100
    assert shards["ResultPath"] is None
    retry = shards["ItemProcessor"]["States"]["Enqueue"]["Retry"]
    assert retry[0] == {"ErrorEquals": ["ShardFailed"], "MaxAttempts": 0}
    assert retry[1]["ErrorEquals"] == ["States.ALL"] and retry[1]["MaxAttempts"] >= 5


def test_deploy_fan_out_retries_sets_a_shards_retries_on_both_paths(tmp_path: Path) -> None:
    s = settings(tmp_path, FAN_OUT + "fan_out_retries = 3\n")
    for body in (
        fanout.fan_out_spec(s, spec_of(s)).definition("arn:fn"),  # deploy's API path
        template(s)["Resources"]["FanOutStateMachine"]["Properties"]["Definition"],
    ):
        task = body["States"]["Shards"]["ItemProcessor"]["States"]["Enqueue"]
        assert task["Retry"][1]["MaxAttempts"] == 3


# -- the template ------------------------------------------------------------------------------

cfnlint_api = pytest.importorskip("cfnlint.api")
sam_transform = pytest.importorskip("samtranslator.translator.transform")


def template(s: Settings) -> dict[str, Any]:
    spec = template_spec(s, migration, visibility_timeout=s.queue.visibility_timeout)
    fan = template_fan_out(s, spec)
    assert fan is not None
    body = build_template(s, spec, code_uri="stack.zip")
    body["Resources"] |= resources(fan, "stack.zip")
    body["Outputs"] |= outputs()
    return body


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def test_the_template_holds_the_fan_out_and_passes_cfn_lint_and_the_sam_translator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = template(settings(tmp_path, region="eu-west-1"))
    res = body["Resources"]
    machine = res["FanOutStateMachine"]["Properties"]
    assert machine["StateMachineName"] == "orders-fan-out"
    assert machine["DefinitionSubstitutions"] == {
        "EnqueueFunctionArn": {"Fn::GetAtt": ["EnqueueFunction", "Arn"]}
    }
    task = machine["Definition"]["States"]["Shards"]["ItemProcessor"]["States"]["Enqueue"]
    assert task["Parameters"]["FunctionName"] == "${EnqueueFunctionArn}"
    assert res["EnqueueFunction"]["Properties"]["CodeUri"] == "stack.zip"
    assert res["EnqueueFunction"]["Properties"]["Handler"] == "northmigrate.enqueue.child.handler"
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(body))
    config = cfnlint_api.ManualArgs(include_checks=["I"], regions=["eu-west-1"])
    assert [str(m) for m in cfnlint_api.lint_file(path, config=config)] == []
    packaged = copy.deepcopy(body)
    for name in ("WorkerFunction", "EnqueueFunction"):
        packaged["Resources"][name]["Properties"]["CodeUri"] = "s3://code-bucket/abc.zip"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    out = sam_transform.transform(packaged, {}, NoManagedPolicies())
    assert out["Resources"]["EnqueueFunction"]["Type"] == "AWS::Lambda::Function"
    assert out["Resources"]["FanOutStateMachine"] == res["FanOutStateMachine"]
