"""The worker on AWS Lambda: build the package, deploy (or plan, or write a template), destroy.

``deploy`` reads the queues ``provision`` made (they must exist), refuses settings that would
lose work (a visibility timeout under 6 x the function timeout), builds the package, then
makes the role, log group, function and event source mapping match (``deploy.apply``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from northmigrate.aws import AwsClients
from northmigrate.config import Settings
from northmigrate.deploy.apply import Deployer, DeployReport
from northmigrate.deploy.destroy import DestroyReport, destroy
from northmigrate.deploy.package import BuildOptions, Package, build_package, python_version_of
from northmigrate.deploy.spec import StackSpec, build_spec
from northmigrate.deploy.template import build_template, code_key, write_template
from northmigrate.plugin import Migration
from northmigrate.queues import Queues
from northmigrate.tap import read_state

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


@dataclass
class TemplateReport:
    template: str
    package: str
    code_key: str
    code_sha256: str
    package_size: int
    resources: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "package": self.package,
            "code_key": self.code_key,
            "code_sha256": self.code_sha256,
            "package_size": self.package_size,
            "resources": self.resources,
        }


def template(
    clients: AwsClients,
    settings: Settings,
    migration: Migration[Any],
    path: Path,
    *,
    cwd: Path | None = None,
) -> TemplateReport:
    """Write the stack as a CloudFormation template at ``path``, and the package next to it."""
    spec, main_url = stack_spec(clients, settings, migration)
    zip_path = path.with_suffix(".zip")
    package: Package = build_package(build_options(settings, cwd), zip_path)
    body = build_template(spec, package, read_state(clients.client("sqs"), main_url))
    write_template(path, body)
    return TemplateReport(
        template=str(path),
        package=str(zip_path),
        code_key=code_key(spec, package),
        code_sha256=package.sha256,
        package_size=package.size,
        resources=[f"{name} ({r['Type']})" for name, r in body["Resources"].items()],
    )
