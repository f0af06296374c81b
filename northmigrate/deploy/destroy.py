"""``destroy``: remove what ``deploy`` made — the event source mapping, the function, the
role and the log group — and the queues only when asked, never losing a message.

Every precondition is checked before anything is deleted: with ``delete_queues`` the main
queue must be empty (its records are not migrated yet) and the DLQ must be empty unless its
messages are exported first (``export``); a refusal leaves everything in place.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AwsClients, aws_errors, error_code
from northmigrate.aws.queues import Queues
from northmigrate.config import Settings
from northmigrate.consume.tap import wait_mapping
from northmigrate.control.provision import Change
from northmigrate.deploy.schedule import delete_schedule, rule_name
from northmigrate.deploy.spec import function_name, log_group_name, role_name
from northmigrate.dlq.export import ExportWriter
from northmigrate.dlq.inspect import inspect as inspect_dlq
from northmigrate.errors import InputError

if TYPE_CHECKING:
    from mypy_boto3_lambda.type_defs import EventSourceMappingConfigurationTypeDef

_GONE = {
    "NoSuchEntity",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
}

# Exports the DLQ's messages to a file without removing any; returns how many it wrote.
Exporter = Callable[[AwsClients, Settings, Path], int]


@dataclass
class DestroyReport:
    changes: list[Change] = field(default_factory=list)
    exported: int = 0
    export_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": [c.to_dict() for c in self.changes if c.action == "deleted"],
            "changes": [c.to_dict() for c in self.changes],
            "exported": self.exported,
            "export_file": self.export_file,
        }


def _gone(exc: BaseException) -> bool:
    return error_code(exc) in _GONE


def default_exporter(clients: AwsClients, settings: Settings, path: Path) -> int:
    """Every dead letter, whole, as JSON lines (``dlq inspect --export``'s format, mode 0600).

    Whole means with sensitive fields: the file is what is left of those records once the
    DLQ is gone (the CLI asks for ``--show-pii`` to say so).
    """
    sqs = clients.client("sqs")
    url = Queues(sqs, settings.queue).dlq_url()
    with ExportWriter(path) as export:
        report = inspect_dlq(sqs, url, show_pii=True, limit=0, export=export)
    return int(report.exported)


def _queue_preconditions(queues: Queues, export: Path | None) -> tuple[str | None, str | None, int]:
    """(main url, dlq url, dlq messages) of the queues that exist; refuses what loses data."""
    urls: dict[str, str | None] = {}
    for name in (queues.main_name, queues.dlq_name):
        try:
            urls[name] = queues.url(name)
        except Exception as exc:
            if not _gone(exc.__cause__ or exc):
                raise
            urls[name] = None
    main_url, dlq_url = urls[queues.main_name], urls[queues.dlq_name]
    if main_url is not None:
        depth = queues.depth(main_url)
        if depth.total:
            raise InputError(
                f"queue {queues.main_name} still holds {depth.total} messages "
                "(records not migrated yet); not deleting it",
                hint="let the worker drain it (or tap open) and run destroy again, "
                "or destroy without --delete-queues",
            )
    held = queues.depth(dlq_url).total if dlq_url is not None else 0
    if held and export is None:
        raise InputError(
            f"the DLQ {queues.dlq_name} still holds {held} messages; not deleting it",
            hint="pass --export FILE to save them first, or redrive them",
        )
    return main_url, dlq_url, held


def destroy(
    clients: AwsClients,
    settings: Settings,
    *,
    delete_queues: bool = False,
    export: Path | None = None,
    exporter: Exporter = default_exporter,
    sleep: Callable[[float], None] = time.sleep,
) -> DestroyReport:
    fn, role, group = (
        function_name(settings),
        role_name(settings),
        log_group_name(function_name(settings)),
    )
    sqs, lam = clients.client("sqs"), clients.client("lambda")
    iam, logs = clients.client("iam"), clients.client("logs")
    queues = Queues(sqs, settings.queue)
    report = DestroyReport()
    main_url = dlq_url = None
    held = 0
    if delete_queues:
        main_url, dlq_url, held = _queue_preconditions(queues, export)

    def done(resource: str, name: str, deleted: bool) -> None:
        report.changes.append(Change(resource, name, "deleted" if deleted else "absent"))

    with aws_errors(f"event source mappings of {fn}"):
        found: list[EventSourceMappingConfigurationTypeDef] = []
        pages = lam.get_paginator("list_event_source_mappings").paginate(FunctionName=fn)
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            for page in pages:
                found.extend(page.get("EventSourceMappings", []))
        for mapping in found:
            uuid = str(mapping["UUID"])
            wait_mapping(lam, uuid, sleep=sleep)
            lam.delete_event_source_mapping(UUID=uuid)
            done("mapping", uuid, True)
        if not found:
            done("mapping", f"{settings.queue.name} -> {fn}", False)

    done("probe_schedule", rule_name(fn), delete_schedule(clients, fn))
    with aws_errors(f"function {fn}"):
        try:
            lam.delete_function(FunctionName=fn)
            done("function", fn, True)
        except lam.exceptions.ResourceNotFoundException:
            done("function", fn, False)

    with aws_errors(f"IAM role {role}"):
        try:
            for name in iam.list_role_policies(RoleName=role).get("PolicyNames", []):
                iam.delete_role_policy(RoleName=role, PolicyName=name)
            attached = iam.list_attached_role_policies(RoleName=role)
            for policy in attached.get("AttachedPolicies", []):
                iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
            iam.delete_role(RoleName=role)
            done("role", role, True)
        except iam.exceptions.NoSuchEntityException:
            done("role", role, False)

    with aws_errors(f"log group {group}"):
        try:
            logs.delete_log_group(logGroupName=group)
            done("log_group", group, True)
        except logs.exceptions.ResourceNotFoundException:
            done("log_group", group, False)

    if delete_queues:
        if held and export is not None:
            report.exported = exporter(clients, settings, export)
            report.export_file = str(export)
            if report.exported < held:
                raise InputError(
                    f"exported {report.exported} of the DLQ's {held} messages to {export}; "
                    "not deleting it",
                    hint="run destroy --delete-queues --export FILE again",
                )
        for name, url in ((queues.main_name, main_url), (queues.dlq_name, dlq_url)):
            if url is None:
                done("queue", name, False)
                continue
            with aws_errors(f"delete queue {name}"):
                sqs.delete_queue(QueueUrl=url)
            done("queue", name, True)
    return report
