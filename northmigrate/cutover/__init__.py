"""Cutover: hand a live intake queue from an old consumer to a new one without taking the
service down: hold it (messages wait), switch it (with a canary), roll back, finish.

It may import config, errors, the AWS client factory, the SQS layer and the tap's mapping
helpers; never typer or rich (``cli/cutover.py`` is its command). docs/cutover.md tells the
night step by step.
"""

from __future__ import annotations

from northmigrate.cutover.checks import Check, Plan, plan
from northmigrate.cutover.record import Record, read_record
from northmigrate.cutover.status import CutoverStatus, status
from northmigrate.cutover.steps import StepReport
from northmigrate.cutover.switch import Cutover, SwitchOptions
from northmigrate.cutover.target import Target

__all__ = [
    "Check",
    "Cutover",
    "CutoverStatus",
    "Plan",
    "Record",
    "StepReport",
    "SwitchOptions",
    "Target",
    "plan",
    "read_record",
    "status",
]
