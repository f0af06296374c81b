"""``cutover plan``'s checks on in-process moto: each can fail, and says what it found;
``cutover status``: the record, the backlog against the retention, the mappings."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support.cutover import ROLE_POLICY, Stage, aws_client, role, stage

from northmigrate.cutover import Plan, plan, status
from northmigrate.cutover.record import read_record


@pytest.fixture
def s(mocked_aws: None) -> Iterator[Stage]:
    yield stage()


def verdicts(report: Plan) -> dict[str, bool | None]:
    return {c.name: c.ok for c in report.checks}


def detail(report: Plan, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def test_a_queue_ready_for_the_switch_passes_every_check(s: Stage) -> None:
    report = plan(s.target(), "new", s.iam, hold_s=3600)
    assert report.ok and set(verdicts(report).values()) == {True}
    assert verdicts(report).keys() == {
        "one_consumer",
        "retention",
        "dead_letter_queue",
        "visibility_timeout",
        "batch_item_failures",
        "role",
    }
    assert report.old == ["old"] and report.room_s == 345_600
    assert detail(report, "retention").startswith("retention 4.0 days: the backlog can wait 4.0")
    assert any("cutover hold --queue intake" in step for step in report.steps)
    assert s.mappings() == {"old": "Enabled"} and s.tags() == {}  # nothing changed


def test_two_consumers_enabled_already_fail_the_plan(s: Stage) -> None:
    s.function("other")
    s.lam.create_event_source_mapping(EventSourceArn=s.arn, FunctionName="other", Enabled=True)
    report = plan(s.target(), "new", s.iam)
    assert not report.ok and [c.name for c in report.failed] == ["one_consumer"]
    assert "2 mappings are enabled (old, other): two consumers already" in detail(
        report, "one_consumer"
    )


def test_from_names_the_consumer_the_plan_expects(s: Stage) -> None:
    s.function("other")
    report = plan(s.target(), "new", s.iam, old="other")
    assert verdicts(report)["one_consumer"] is False
    assert detail(report, "one_consumer") == "the enabled consumer is old, not other"


def test_a_held_queue_passes_the_consumer_check(s: Stage) -> None:
    s.cutover().hold("night")
    report = plan(s.target(), "new", s.iam, record=read_record(s.sqs, s.url))
    assert verdicts(report)["one_consumer"] is True and report.old == ["old"]


def test_no_redrive_policy_and_a_short_retention_fail(mocked_aws: None) -> None:
    s = stage(dlq=False, retention=1800)
    report = plan(s.target(), "new", s.iam, hold_s=3600)
    assert {c.name for c in report.failed} == {"dead_letter_queue", "retention"}
    assert detail(report, "dead_letter_queue") == "no redrive policy: a poison message loops"
    report = plan(s.target(), "new", s.iam, hold_s=3600, oldest_age=lambda: 600.0)
    assert "the backlog can wait 1200 s" in detail(report, "retention")
    assert "age is unknown" not in detail(report, "retention")
    assert "age is unknown" in detail(plan(s.target(), "new", s.iam), "retention")


def test_a_visibility_timeout_under_six_function_timeouts_fails(s: Stage) -> None:
    s.function("slow", timeout=11)
    report = plan(s.target(), "slow", s.iam)
    assert [c.name for c in report.failed] == ["visibility_timeout"]
    assert detail(report, "visibility_timeout") == (
        "visibility timeout 60 s, 6 x the timeout of slow (11 s) is 66 s"
    )


def test_an_existing_mapping_that_retries_whole_batches_fails(s: Stage) -> None:
    s.lam.create_event_source_mapping(EventSourceArn=s.arn, FunctionName="new", Enabled=False)
    report = plan(s.target(), "new", s.iam)
    assert [c.name for c in report.failed] == ["batch_item_failures"]


def test_a_role_without_the_consumer_actions_or_the_kms_key_fails(mocked_aws: None) -> None:
    s = stage()
    role(s.iam, "bare", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*"}]})  # fmt: skip
    s.function("bare-fn", role="bare")
    report = plan(s.target(), "bare-fn", s.iam)
    assert detail(report, "role") == (
        "role bare is not granted sqs:DeleteMessage, sqs:ChangeMessageVisibility, "
        "sqs:GetQueueAttributes"
    )
    kms = aws_client("kms", region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    s.sqs.set_queue_attributes(QueueUrl=s.url, Attributes={"KmsMasterKeyId": key})
    report = plan(s.target(), "new", s.iam, kms=kms)
    assert detail(report, "role") == "role consumer is not granted kms:Decrypt"
    granted = {**ROLE_POLICY, "Statement": [*ROLE_POLICY["Statement"],
               {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}]}  # fmt: skip
    s.iam.put_role_policy(
        RoleName="consumer", PolicyName="consume", PolicyDocument=json.dumps(granted)
    )
    report = plan(s.target(), "new", s.iam, kms=kms)
    assert detail(report, "role") == "role consumer may consume the queue and its KMS key"


def test_status_shows_the_hold_the_backlog_and_warns_before_messages_expire(s: Stage) -> None:
    s.cutover().hold("v2 night")
    data = status(s.target(), oldest_age_s=100.0).to_dict()
    assert {"held", "by", "reason", "depth", "oldest_age_s", "retention_s", "mappings"} <= set(data)
    assert (data["held"], data["by"], data["reason"]) == (True, "operator test", "v2 night")
    assert (data["depth"], data["oldest_age_s"], data["retention_s"]) == (0, 100, 345_600)
    assert data["warnings"] == []
    assert [(m["function"], m["state"]) for m in data["mappings"]] == [("old", "Disabled")]
    late = status(s.target(), oldest_age_s=200_000.0).to_dict()
    assert late["expires_in_s"] == 145_600
    assert late["warnings"] == [
        "the oldest message has waited 200000 s of the queue's 345600 s retention: it "
        "expires in 145600 s; switch or roll back before"
    ]
