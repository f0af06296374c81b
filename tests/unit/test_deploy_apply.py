"""Deploy, plan, tap and destroy against in-process moto (no messages on mapped queues)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.config import Settings, load_settings
from northmigrate.consume.probe import PROBE_EVENT
from northmigrate.consume.tap import CUTOVER_TAG, TAG_LIMIT, TAG_STATE, Tap, TapState
from northmigrate.consume.worker.gate import TapGate
from northmigrate.control.provision import provision
from northmigrate.deploy import stack_spec
from northmigrate.deploy.apply import Deployer
from northmigrate.deploy.destroy import destroy
from northmigrate.deploy.package import Package, code_sha256
from northmigrate.deploy.role import same_policy
from northmigrate.errors import InputError
from northmigrate.examples.onboarding import migration


def settings(tmp_path: Path, extra: str = "") -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(
        '[queue]\nname = "orders"\nvisibility_timeout = 120\n'
        '[migration]\nplugin = "northmigrate.examples.onboarding:migration"\n'
        '[migration.options]\ntable = "target"\n' + extra
    )
    return load_settings(path, env={})


def fake_package(tmp_path: Path, content: str = "v1") -> Package:
    path = tmp_path / f"{content}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("northmigrate/x.py", (1980, 1, 1, 0, 0, 0)), content)
        archive.writestr(zipfile.ZipInfo("mig/core.py", (1980, 1, 1, 0, 0, 0)), content)
    data = path.read_bytes()
    return Package(
        path, code_sha256(data), len(data), 2, ("pydantic==2.0",), "host", ("mig/core.py",)
    )


def run(
    clients: AwsClients, s: Settings, package: Package, *, dry_run: bool = False
) -> dict[str, Any]:
    spec, _ = stack_spec(clients, s, migration)
    report = Deployer(clients, spec, package, dry_run=dry_run, sleep=lambda _: None).run()
    return report.to_dict()


def actions(report: dict[str, Any]) -> dict[str, str]:
    return {c["resource"]: c["action"] for c in report["changes"]}


def test_dry_run_plans_and_changes_nothing_then_deploy_is_idempotent(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    provision(clients, s, migration)
    plan = run(clients, s, fake_package(tmp_path), dry_run=True)
    assert plan["package"] == {  # what goes in the function
        "files": 2,
        "plugin_files": ["mig/core.py"],
        "plugin_distribution": None,  # a local module
        "plugin_dependencies": [],
        "dependencies": ["pydantic==2.0"],
        "platform": "host",
    }
    assert actions(plan) == {
        "role": "create",
        "log_group": "create",
        "function": "create",
        "mapping": "create",
        "probe_schedule": "create",
    }
    with pytest.raises(clients.client("iam").exceptions.NoSuchEntityException):
        clients.client("iam").get_role(RoleName="orders-worker-role")
    assert clients.client("lambda").list_functions()["Functions"] == []

    first = run(clients, s, fake_package(tmp_path))
    assert set(actions(first).values()) == {"created"}
    again = run(clients, s, fake_package(tmp_path))
    assert set(actions(again).values()) == {"unchanged"} and again["changed"] is False

    plan = run(clients, s, fake_package(tmp_path, "v2"), dry_run=True)
    assert actions(plan)["function"] == "update"
    lam = clients.client("lambda")
    assert lam.get_function(FunctionName="orders-worker")["Configuration"]["CodeSha256"] == (
        fake_package(tmp_path).sha256
    )


def test_drift_is_put_back(mocked_aws: None, tmp_path: Path) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    provision(clients, s, migration)
    first = run(clients, s, fake_package(tmp_path))
    lam, iam = clients.client("lambda"), clients.client("iam")
    lam.update_event_source_mapping(UUID=first["mapping_uuid"], BatchSize=3)
    lam.update_function_configuration(FunctionName="orders-worker", MemorySize=1024)
    iam.put_role_policy(
        RoleName="orders-worker-role",
        PolicyName="northmigrate-worker",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}],
            }
        ),
    )
    fixed = run(clients, s, fake_package(tmp_path))
    changes = {c["resource"]: c for c in fixed["changes"]}
    assert changes["mapping"]["changed"] == ["BatchSize"]
    assert changes["function"]["changed"] == ["MemorySize"]
    assert changes["role"]["changed"] == ["policy northmigrate-worker"]
    spec, _ = stack_spec(clients, s, migration)
    document = iam.get_role_policy(RoleName="orders-worker-role", PolicyName="northmigrate-worker")
    assert same_policy(document["PolicyDocument"], spec.policy)
    assert lam.get_event_source_mapping(UUID=first["mapping_uuid"])["BatchSize"] == 10


def test_deploy_never_reopens_a_closed_tap_nor_lifts_its_limit(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    provision(clients, s, migration)
    tap = Tap(clients, Queues(clients.client("sqs"), s.queue), sleep=lambda _: None)
    tap.close()
    tap.limit(4)
    report = run(clients, s, fake_package(tmp_path))
    assert report["tap"] == "closed"
    mapping = clients.client("lambda").get_event_source_mapping(UUID=report["mapping_uuid"])
    assert mapping["State"] == "Disabled"
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 4}
    assert actions(run(clients, s, fake_package(tmp_path)))["mapping"] == "unchanged"

    status = tap.open()
    state = status.state
    assert (state.open, state.limit, state.limit_by, state.closed_by) == (True, 4, "operator", None)
    assert [(m.enabled, m.max_concurrency) for m in status.mappings] == [(True, 4)]
    tap.default_limit = 10
    lifted = tap.limit(None)
    assert lifted.state.limit is None and lifted.mappings[0].max_concurrency == 10
    with pytest.raises(InputError, match="2 to 1000"):
        tap.limit(1)


def test_deploy_on_a_queue_in_cutover_makes_its_mapping_disabled(
    mocked_aws: None, tmp_path: Path
) -> None:
    """A cutover decides who reads the queue: a deploy meanwhile adds no second consumer."""
    clients, s = AwsClients(), settings(tmp_path)
    url = provision(clients, s, migration).queue_url
    clients.client("sqs").tag_queue(QueueUrl=url, Tags={CUTOVER_TAG: "held"})
    report = run(clients, s, fake_package(tmp_path))
    mapping = clients.client("lambda").get_event_source_mapping(UUID=report["mapping_uuid"])
    assert mapping["State"] == "Disabled"


def test_destroy_removes_everything_deploy_made(mocked_aws: None, tmp_path: Path) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    provision(clients, s, migration)
    run(clients, s, fake_package(tmp_path))
    report = destroy(clients, s, delete_queues=True, sleep=lambda _: None)
    assert {(c["resource"], c["action"]) for c in report.to_dict()["changes"]} == {
        ("mapping", "deleted"),
        ("function", "deleted"),
        ("role", "deleted"),
        ("log_group", "deleted"),
        ("probe_schedule", "deleted"),
        ("queue", "deleted"),
    }
    assert clients.client("lambda").list_functions()["Functions"] == []
    assert clients.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []
    assert clients.client("iam").list_roles()["Roles"] == []
    assert clients.client("logs").describe_log_groups()["logGroups"] == []
    assert clients.client("sqs").list_queues().get("QueueUrls", []) == []
    again = destroy(clients, s, delete_queues=True, sleep=lambda _: None)
    assert {c.action for c in again.changes} == {"absent"}


def test_destroy_never_deletes_queues_that_hold_messages(mocked_aws: None, tmp_path: Path) -> None:
    clients, s = AwsClients(), settings(tmp_path)
    report = provision(clients, s, migration)  # nothing deployed: no mapping on the queue
    sqs = clients.client("sqs")
    sqs.send_message(QueueUrl=report.dlq_url, MessageBody="dead")
    with pytest.raises(InputError, match="DLQ orders-dlq still holds 1 messages"):
        destroy(clients, s, delete_queues=True)
    sqs.send_message(QueueUrl=report.queue_url, MessageBody="pending")
    with pytest.raises(InputError, match="queue orders still holds 1 messages"):
        destroy(clients, s, delete_queues=True, export=tmp_path / "dlq.jsonl")
    assert len(sqs.list_queues()["QueueUrls"]) == 2  # refused before deleting anything
    sqs.purge_queue(QueueUrl=report.queue_url)

    exported: list[Path] = []

    def exporter(c: AwsClients, st: Settings, path: Path) -> int:
        exported.append(path)
        return 1

    done = destroy(clients, s, delete_queues=True, export=tmp_path / "d.jsonl", exporter=exporter)
    assert exported == [tmp_path / "d.jsonl"] and done.exported == 1
    assert sqs.list_queues().get("QueueUrls", []) == []


class FakeSqs:
    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.calls = 0

    def list_queue_tags(self, QueueUrl: str) -> dict[str, Any]:
        self.calls += 1
        return {"Tags": dict(self.tags)}


def test_the_gate_reads_the_tags_at_most_once_per_ttl() -> None:
    sqs, now = FakeSqs(), [0.0]
    gate = TapGate(sqs, "url", ttl=2.0, clock=lambda: now[0])
    assert gate.is_open() and gate.limit() is None
    sqs.tags = {TAG_STATE: "closed", TAG_LIMIT: "5"}
    now[0] = 1.9
    assert gate.is_open()  # cached
    now[0] = 2.0
    assert not gate.is_open() and gate.limit() == 5
    assert sqs.calls == 2
    sqs.tags = {TAG_STATE: "open", TAG_LIMIT: "junk"}
    now[0] = 4.5
    assert gate.state() == TapState(open=True, limit=None)


def test_deploy_schedules_the_guards_probe_and_manual_reopen_has_none(
    mocked_aws: None, tmp_path: Path
) -> None:
    clients, s = AwsClients(), settings(tmp_path, "[guard]\nprobe_interval_s = 90\n")
    provision(clients, s, migration)
    report = run(clients, s, fake_package(tmp_path))
    events = clients.client("events")
    rule = events.describe_rule(Name="orders-worker-probe")
    assert rule["ScheduleExpression"] == "rate(2 minutes)" and rule["State"] == "ENABLED"
    [target] = events.list_targets_by_rule(Rule="orders-worker-probe")["Targets"]
    assert target["Arn"] == report["function_arn"]
    assert json.loads(target["Input"]) == PROBE_EVENT
    policy = json.loads(clients.client("lambda").get_policy(FunctionName="orders-worker")["Policy"])
    assert [st["Principal"] for st in policy["Statement"]] == [{"Service": "events.amazonaws.com"}]

    manual = settings(tmp_path, '[guard]\nreopen = "manual"\n')
    assert stack_spec(clients, manual, migration)[0].probe_schedule is None
