"""Test doubles shared by the unit tests of the worker's parts and the Lambda handler."""

from __future__ import annotations

from northmigrate.aws.sqs.message import InMessage
from northmigrate.consume.processing import Outcome


class Settled:
    """What a dispatcher settled and handed back, in order."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.handed_back: list[str] = []

    def settle(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def hand_back(self, messages: list[InMessage]) -> None:
        self.handed_back.extend(m.message_id for m in messages)
