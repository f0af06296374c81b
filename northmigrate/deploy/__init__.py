"""The worker on AWS Lambda: build the package, deploy (or plan, or write a template), destroy.
May import ``consume`` (the tap), ``control``, ``dlq``, ``aws``, the plugin and the base modules.

``deploy`` reads the queues ``provision`` made (they must exist), refuses settings that would
lose work (a visibility timeout under 6 x the function timeout), builds the package, then
makes the role, log group, function and event source mapping match (``deploy.apply``).
``deploy --template`` writes the whole stack, queues included, as a SAM template
(``deploy.template``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from northmigrate.aws.clients import AwsClients, is_loopback, shown_url
from northmigrate.aws.queues import Queues
from northmigrate.config import Settings
from northmigrate.consume.tap import TapState, read_state
from northmigrate.deploy.apply import Deployer, DeployReport
from northmigrate.deploy.destroy import DestroyReport, destroy
from northmigrate.deploy.package import BuildOptions, Package, build_package, python_version_of
from northmigrate.deploy.spec import StackSpec, build_spec
from northmigrate.deploy.template import build_template, template_spec, write_template
from northmigrate.errors import ConfigError
from northmigrate.plugin import Migration

__all__ = [
    "DeployReport",
    "DestroyReport",
    "TemplateReport",
    "build_options",
    "deploy",
    "destroy",
    "stack_spec",
    "template",
]


def build_options(settings: Settings, cwd: Path | None = None) -> BuildOptions:
    d = settings.deploy
    return BuildOptions(
        plugin=settings.migration.plugin,
        arch=d.arch,
        python_version=python_version_of(d.runtime),
        requirements=tuple(d.requirements),
        bundle_boto3=d.bundle_boto3,
        cwd=cwd or Path.cwd(),
        include=tuple(d.include),
    )


def stack_spec(
    clients: AwsClients, settings: Settings, migration: Migration[Any]
) -> tuple[StackSpec, str]:
    """The desired stack (from the deployed queues) and the main queue's URL."""
    queues = Queues(clients.client("sqs"), settings.queue)
    main_url, dlq_url = queues.main_url(), queues.dlq_url()
    main = queues.attributes(main_url, ["QueueArn", "VisibilityTimeout"])
    spec = build_spec(
        settings,
        migration,
        queue_arn=main["QueueArn"],
        dlq_arn=queues.arn(dlq_url),
        visibility_timeout=int(main.get("VisibilityTimeout", settings.queue.visibility_timeout)),
    )
    return spec, main_url


def deploy(
    clients: AwsClients,
    settings: Settings,
    migration: Migration[Any],
    *,
    dry_run: bool = False,
    cwd: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployReport:
    """Create or update the worker on Lambda; with ``dry_run``, only say what would change."""
    spec, _ = stack_spec(clients, settings, migration)
    with tempfile.TemporaryDirectory(prefix="northmigrate-deploy-") as tmp:
        package = build_package(build_options(settings, cwd), Path(tmp) / "package.zip")
        return Deployer(clients, spec, package, dry_run=dry_run, sleep=sleep).run()


loopback = is_loopback  # a template's function cannot reach what this names


def check_endpoint(settings: Settings, keep_local_endpoint: bool) -> str | None:
    """The endpoint the template's function keeps (None: AWS's own). A loopback one is
    refused unless asked for: a function in AWS cannot reach this machine."""
    url = settings.aws.endpoint_url
    if not url or not loopback(url):
        return url
    if keep_local_endpoint:
        return url
    raise ConfigError(
        f"aws.endpoint_url {shown_url(url)} is a loopback address: a function deployed from "
        "the template would call it from inside Lambda, where nothing answers",
        hint="unset aws.endpoint_url (or NORTHMIGRATE_AWS__ENDPOINT_URL) for the template, or "
        "pass --keep-local-endpoint for an emulator that runs the stack on this machine",
    )


@dataclass
class TemplateReport:
    template: str
    package: str
    code_sha256: str
    package_size: int
    queues: bool
    endpoint_url: str | None
    resources: list[str]
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "package": self.package,
            "code_sha256": self.code_sha256,
            "package_size": self.package_size,
            "queues": self.queues,
            "endpoint_url": shown_url(self.endpoint_url) or None,
            "resources": self.resources,
            "parameters": self.parameters,
        }


def template(
    clients: AwsClients,
    settings: Settings,
    migration: Migration[Any],
    path: Path,
    *,
    queues: bool = True,
    keep_local_endpoint: bool = False,
    cwd: Path | None = None,
) -> TemplateReport:
    """Write the stack as a SAM template at ``path``, and the package next to it (``path``
    with ``.zip``, the function's ``CodeUri``). The whole stack needs no AWS call; with
    ``queues=False`` the existing queues are read (their visibility timeout, the tap)."""
    endpoint = check_endpoint(settings, keep_local_endpoint)
    tap, visibility = TapState(), settings.queue.visibility_timeout
    if not queues:
        existing = Queues(clients.client("sqs"), settings.queue)
        main_url = existing.main_url()
        existing.dlq_url()  # it must exist too
        tap = read_state(clients.client("sqs"), main_url)
        current = existing.attributes(main_url, ["VisibilityTimeout"])
        visibility = int(current.get("VisibilityTimeout", visibility))
    spec = template_spec(
        settings, migration, visibility_timeout=visibility, keep_endpoint=endpoint is not None
    )
    zip_path = path.with_suffix(".zip")
    package: Package = build_package(build_options(settings, cwd), zip_path)
    body = build_template(settings, spec, code_uri=zip_path.name, queues=queues, tap=tap)
    write_template(path, body)
    return TemplateReport(
        template=str(path),
        package=str(zip_path),
        code_sha256=package.sha256,
        package_size=package.size,
        queues=queues,
        endpoint_url=endpoint,
        resources=[f"{name} ({r['Type']})" for name, r in body["Resources"].items()],
        parameters={k: p.get("Default") for k, p in body["Parameters"].items()},
    )
