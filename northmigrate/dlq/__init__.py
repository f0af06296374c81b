"""Dead-letter queue operations: inspect without consuming, export, redrive, watch, alarm.
Each is a library call; the ``dlq`` and ``alarm`` commands are thin wrappers over them
(``status``, of the whole migration, is :mod:`northmigrate.control.status`).
May import ``consume``, ``control``, ``records``, ``aws``, the plugin, ``redact`` and the base
modules."""

from northmigrate.aws.sqs.reader import Reader, peek
from northmigrate.dlq.alarm import AlarmReport, create_alarm
from northmigrate.dlq.export import ExportWriter
from northmigrate.dlq.inspect import InspectReport, inspect
from northmigrate.dlq.letters import record_reasons
from northmigrate.dlq.redrive import (
    RedriveReport,
    default_destination,
    native_redrive,
    redrive,
)
from northmigrate.dlq.watch import Sample, Watcher
from northmigrate.dlq.where import Condition, parse_all, parse_where

__all__ = [
    "AlarmReport",
    "Condition",
    "ExportWriter",
    "InspectReport",
    "Reader",
    "RedriveReport",
    "Sample",
    "Watcher",
    "create_alarm",
    "default_destination",
    "inspect",
    "native_redrive",
    "parse_all",
    "parse_where",
    "peek",
    "record_reasons",
    "redrive",
]
