"""What every command shares: the global options and lazily built collaborators.

The global flags ``--output``, ``--region``, ``--profile`` and ``--endpoint-url`` are taken
before or after the sub-command (as the AWS CLI takes them) and land here; a flag beats
AWS's environment variables, which beat the config (``config.load_settings``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from northmigrate.aws.clients import AwsClients
from northmigrate.aws.queues import Queues
from northmigrate.config import Settings, load_settings
from northmigrate.plugin import Migration, load_migration


@dataclass
class State:
    config_path: str | None = None
    debug: bool = False
    output: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _clients: AwsClients | None = field(default=None, repr=False)
    _migration: Migration[Any] | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            settings = load_settings(self.config_path)
            for name in ("region", "profile", "endpoint_url"):
                value = getattr(self, name)
                flag = "--" + name.replace("_", "-")
                settings = settings.with_aws(flag, **{name: value})
            self._settings = settings
        return self._settings

    def clients(self, pool_size: int | None = None) -> AwsClients:
        if self._clients is None:
            size = pool_size or self.settings.worker.concurrency
            settings = self.settings
            self._clients = AwsClients(
                settings.aws, pool_size=size + 4, origins=settings.aws_origins
            )
        return self._clients

    @property
    def migration(self) -> Migration[Any]:
        if self._migration is None:
            self._migration = load_migration(self.settings.migration.plugin)
        return self._migration

    def queues(self) -> Queues:
        return Queues(self.clients().client("sqs"), self.settings.queue)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj
