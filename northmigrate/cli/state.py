"""What every command shares: the global options and lazily built collaborators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from northmigrate.aws import AwsClients
from northmigrate.config import Settings, load_settings
from northmigrate.plugin import Migration, load_migration
from northmigrate.queues import Queues


@dataclass
class State:
    config_path: str | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _clients: AwsClients | None = field(default=None, repr=False)
    _migration: Migration[Any] | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def clients(self, pool_size: int | None = None) -> AwsClients:
        if self._clients is None:
            size = pool_size or self.settings.worker.concurrency
            self._clients = AwsClients(self.settings.aws, pool_size=size + 4)
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
