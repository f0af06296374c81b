"""The cutover's steps on in-process moto: each step's effect on the mappings, the refusals,
idempotence, an interrupted switch, the canary. Never two enabled mappings at any instant
(``EnabledWatch`` reads the mappings after every Lambda call)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from support.cutover import Stage, stage

from northmigrate.aws import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.config import QueueSettings
from northmigrate.consume.tap import Tap
from northmigrate.cutover import SwitchOptions
from northmigrate.cutover.record import HELD, SWITCHED, TAG_STATE, TAG_TO, Record, write_record
from northmigrate.errors import AwsError, Refused


@pytest.fixture
def s(mocked_aws: None) -> Iterator[Stage]:
    yield stage()


def test_hold_disables_the_old_mapping_records_who_when_why_and_is_idempotent(s: Stage) -> None:
    report = s.cutover().hold("v2 night")
    assert report.changed and report.record.held
    assert s.mappings() == {"old": "Disabled"}
    tags = s.tags()
    assert tags[TAG_STATE] == HELD
    assert tags["northmigrate:cutover-by"] == "operator test"
    assert tags["northmigrate:cutover-at"] == "2026-12-06T21:00:00Z"
    assert tags["northmigrate:cutover-reason"] == "v2 night"
    assert tags["northmigrate:cutover-from"] == s.old_uuid
    again = s.cutover().hold("v2 night")
    assert not again.changed and s.tags() == tags and s.mappings() == {"old": "Disabled"}


def test_switch_enables_the_new_mapping_and_keeps_the_old_one_disabled(s: Stage) -> None:
    s.cutover().hold()
    report = s.cutover().switch("new")
    assert report.changed and report.ok and report.record.switched
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}
    new = next(m for m in report.mappings if m.function == "new")
    assert new.reports_item_failures and new.batch_size == 10
    assert s.tags()[TAG_STATE] == SWITCHED and s.tags()[TAG_TO] == "new"
    assert s.watch.most == 1
    create = next(u for u in s.watch.updates if u.get("FunctionName") == "new")
    assert create["Enabled"] is False  # created disabled, enabled once alone

    again = s.cutover().switch("new")  # idempotent
    assert not again.changed and s.mappings() == {"old": "Disabled", "new": "Enabled"}


def test_rollback_disables_the_new_mapping_then_enables_the_old_one(s: Stage) -> None:
    s.cutover().hold()
    s.cutover().switch("new")
    report = s.cutover().rollback()
    assert report.changed and report.record == Record()
    assert s.mappings() == {"old": "Enabled", "new": "Disabled"}
    assert not any(key.startswith("northmigrate:cutover") for key in s.tags())
    assert s.watch.most == 1
    again = s.cutover().rollback()
    assert not again.changed and s.mappings() == {"old": "Enabled", "new": "Disabled"}


def test_rollback_of_a_hold_gives_the_queue_back_to_the_old_consumer(s: Stage) -> None:
    s.cutover().hold()
    s.cutover().rollback()
    assert s.mappings() == {"old": "Enabled"}


def test_finish_deletes_the_old_mapping_once_switched_and_is_idempotent(s: Stage) -> None:
    s.cutover().hold()
    with pytest.raises(Refused, match="held, not switched"):
        s.cutover().finish()
    assert s.mappings() == {"old": "Disabled"}
    s.cutover().switch("new")
    report = s.cutover().finish()
    assert report.changed and s.mappings() == {"new": "Enabled"}
    assert not any(key.startswith("northmigrate:cutover") for key in s.tags())
    assert not s.cutover().finish().changed


def test_a_missing_function_or_queue_is_an_error_and_nothing_changes(s: Stage) -> None:
    with pytest.raises(AwsError, match="function nope does not exist") as missing:
        s.cutover().switch("nope")
    assert missing.value.exit_code == 3
    with pytest.raises(AwsError, match="queue elsewhere does not exist"):
        s.cutover("elsewhere").hold()
    with pytest.raises(AwsError, match="queue elsewhere does not exist"):
        s.target("https://sqs.us-east-1.amazonaws.com/123456789012/elsewhere")
    assert s.mappings() == {"old": "Enabled"} and s.tags() == {}


def test_switch_without_a_hold_is_refused_and_changes_nothing(s: Stage) -> None:
    with pytest.raises(Refused, match="is not held"):
        s.cutover().switch("new")
    assert s.mappings() == {"old": "Enabled"} and s.tags() == {}


def test_switch_is_refused_while_another_consumer_is_enabled(s: Stage) -> None:
    s.cutover().hold()
    s.lam.update_event_source_mapping(UUID=s.old_uuid, Enabled=True)  # someone, by hand
    with pytest.raises(Refused, match="would read the queue beside it"):
        s.cutover().switch("new")
    assert s.mappings() == {"old": "Enabled"}


def test_switch_to_a_function_too_slow_for_the_visibility_timeout_is_refused(s: Stage) -> None:
    s.function("slow", timeout=30)  # 6 x 30 s > the queue's 60 s
    s.cutover().hold()
    with pytest.raises(Refused, match=r"visibility_timeout: visibility timeout 60 s"):
        s.cutover().switch("slow")
    assert s.mappings() == {"old": "Disabled"} and TAG_TO not in s.tags()


def test_switch_to_a_function_whose_role_may_not_consume_is_refused(s: Stage) -> None:
    from support.cutover import role

    role(s.iam, "bare", None)
    s.function("unfit", role="bare")
    s.cutover().hold()
    with pytest.raises(Refused, match="role: role bare is not granted sqs:ReceiveMessage"):
        s.cutover().switch("unfit")
    assert s.mappings() == {"old": "Disabled"}


def test_a_failure_after_the_new_mapping_was_created_leaves_the_queue_held(s: Stage) -> None:
    s.cutover().hold()

    def refuse(params: dict[str, object], model: object, **_: object) -> None:
        if getattr(model, "name", "") == "UpdateEventSourceMapping" and params.get("Enabled"):
            raise AwsError("update event source mapping: ServiceException: try later")

    s.lam.meta.events.register("provide-client-params.lambda", refuse)
    with pytest.raises(AwsError, match="intake is held again") as failed:
        s.cutover().switch("new")
    assert "cutover switch --queue intake --to new continues" in str(failed.value)
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}
    assert s.tags()[TAG_STATE] == HELD and s.tags()[TAG_TO] == "new"
    s.lam.meta.events.unregister("provide-client-params.lambda", refuse)

    s.cutover().switch("new")  # run again: it finishes, with the same mapping
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}
    assert s.watch.most == 1


def test_a_switch_killed_after_it_created_the_new_mapping_finishes_when_run_again(
    s: Stage,
) -> None:
    """A process killed right after the create (no handler ran): the record says held,
    with the new function; the new mapping exists, disabled. The rerun reuses it."""
    s.cutover().hold()
    record = s.cutover().record()
    write_record(s.sqs, s.url, replace(record, to="new"))
    s.lam.create_event_source_mapping(
        EventSourceArn=s.arn,
        FunctionName="new",
        Enabled=False,
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    report = s.cutover().switch("new")
    assert report.record.switched
    found = s.lam.list_event_source_mappings(EventSourceArn=s.arn)["EventSourceMappings"]
    assert sorted(m["FunctionArn"].rsplit(":", 1)[-1] for m in found) == ["new", "old"]
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}


def test_a_canary_that_sees_dead_letters_holds_the_queue_again(s: Stage) -> None:
    s.cutover().hold()

    def dead_letter() -> None:  # the DLQ has no mapping: moto may hold messages there
        if s.time.now > 10:
            s.sqs.send_message(QueueUrl=s.dlq_url, MessageBody="poison")
            s.time.on_sleep.clear()

    s.time.on_sleep.append(dead_letter)
    options = SwitchOptions(canary=1, canary_wait_s=60)
    report = s.cutover().switch("new", options)
    assert not report.ok and report.canary is not None
    assert report.canary.reason == "1 new message(s) in the dead-letter queue intake-dlq"
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}
    tags = s.tags()
    assert tags[TAG_STATE] == HELD
    assert tags["northmigrate:cutover-reason"].startswith("canary of new failed: 1 new message")


def test_a_canary_that_sees_function_errors_holds_the_queue_again(s: Stage) -> None:
    s.cutover().hold()

    def errors() -> None:
        s.cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": "Errors",
                    "Dimensions": [{"Name": "FunctionName", "Value": "new"}],
                    "Value": 2,
                }
            ],
        )
        s.time.on_sleep.clear()

    s.time.on_sleep.append(errors)
    report = s.cutover().switch("new", SwitchOptions(canary=1, canary_wait_s=30))
    assert report.canary is not None and report.canary.reason == "2 error(s) of function new"
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}


def test_a_passing_canary_starts_slow_then_opens_fully(s: Stage) -> None:
    s.cutover().hold()
    report = s.cutover().switch("new", SwitchOptions(canary=2, canary_wait_s=30, max_concurrency=8))
    assert report.ok and report.canary is not None and report.canary.waited_s >= 30
    updates = [u for u in s.watch.updates if u["op"] == "UpdateEventSourceMapping"]
    enables = [u for u in updates if u.get("Enabled") is True]
    assert [(u["BatchSize"], u["ScalingConfig"]) for u in enables] == [
        (2, {"MaximumConcurrency": 2}),
        (10, {"MaximumConcurrency": 8}),
    ]
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"} and s.watch.most == 1


def test_a_dead_letter_of_the_canary_s_first_batch_counts(s: Stage) -> None:
    """The DLQ's depth is noted before the new mapping is enabled: a dead letter that comes
    as soon as it reads is seen."""
    s.cutover().hold()

    sent: list[str] = []

    def first_batch_dead_letters(model: object, parsed: dict[str, object], **_: object) -> None:
        enabled = parsed.get("State") == "Enabled"
        if getattr(model, "name", "") == "UpdateEventSourceMapping" and enabled and not sent:
            sent.append(s.sqs.send_message(QueueUrl=s.dlq_url, MessageBody="poison")["MessageId"])

    s.lam.meta.events.register("after-call.lambda", first_batch_dead_letters)
    report = s.cutover().switch("new", SwitchOptions(canary=1, canary_wait_s=30))
    assert report.canary is not None and not report.canary.ok
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}


def main_queue_tap(s: Stage) -> Tap:
    """The tap, with the cut-over queue as the migration's main queue."""
    queues = Queues(s.sqs, QueueSettings(name="intake", dlq_name="intake-dlq"))
    return Tap(AwsClients(), queues, sleep=s.time.sleep)


def test_tap_open_never_makes_a_second_consumer_of_a_queue_in_cutover(s: Stage) -> None:
    s.cutover().hold("v2 night")
    with pytest.raises(Refused, match="held by cutover"):
        main_queue_tap(s).open()
    assert s.mappings() == {"old": "Disabled"}

    s.cutover().switch("new")
    main_queue_tap(s).close(reason="the new service is slow")
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}
    reopened = main_queue_tap(s).open()
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}  # the old one stays off
    assert reopened.state.cutover == "switched"
    assert s.watch.most == 1


def test_a_hold_after_a_switch_holds_the_new_consumer_and_either_way_out_works(
    s: Stage,
) -> None:
    s.cutover().hold()
    s.cutover().switch("new")
    held = s.cutover().hold("the new service misbehaves")
    assert held.changed and held.record.held and held.record.old == (s.old_uuid,)
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}
    s.cutover().switch("new")  # on again
    assert s.mappings() == {"old": "Disabled", "new": "Enabled"}
    s.cutover().hold()
    s.cutover().rollback()  # or back to the old one
    assert s.mappings() == {"old": "Enabled", "new": "Disabled"}
    assert s.watch.most == 1


def test_a_hold_that_fails_half_way_says_what_state_the_queue_is_in_and_continues(
    s: Stage,
) -> None:
    def unavailable(params: dict[str, object], model: object, **_: object) -> None:
        if getattr(model, "name", "") == "UpdateEventSourceMapping":
            raise AwsError("update event source mapping: ServiceException: try later")

    s.lam.meta.events.register("provide-client-params.lambda", unavailable)
    with pytest.raises(AwsError) as failed:
        s.cutover().hold("v2 night")
    assert str(failed.value) == (
        "update event source mapping: ServiceException: try later; intake is held, but a "
        "mapping may still be enabled (cutover hold --queue intake again continues; cutover "
        "status --queue intake shows each mapping)"
    )
    assert s.tags()[TAG_STATE] == HELD and s.mappings() == {"old": "Enabled"}
    s.lam.meta.events.unregister("provide-client-params.lambda", unavailable)
    assert s.cutover().hold().changed and s.mappings() == {"old": "Disabled"}
    assert s.tags()["northmigrate:cutover-from"] == s.old_uuid


def test_a_rollback_that_fails_half_way_continues_when_run_again(s: Stage) -> None:
    s.cutover().hold()
    s.cutover().switch("new")
    calls: list[str] = []

    def second_update_fails(params: dict[str, object], model: object, **_: object) -> None:
        if getattr(model, "name", "") == "UpdateEventSourceMapping":
            calls.append(str(params.get("UUID")))
            if len(calls) == 2:  # the new one is disabled; enabling the old one fails
                raise AwsError("update event source mapping: ServiceException: try later")

    s.lam.meta.events.register("provide-client-params.lambda", second_update_fails)
    with pytest.raises(AwsError, match="intake is held, half rolled back"):
        s.cutover().rollback()
    assert s.mappings() == {"old": "Disabled", "new": "Disabled"}
    assert s.tags()[TAG_STATE] == HELD
    s.lam.meta.events.unregister("provide-client-params.lambda", second_update_fails)
    s.cutover().rollback()
    assert s.mappings() == {"old": "Enabled", "new": "Disabled"} and s.watch.most == 1
