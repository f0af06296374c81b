"""The cutover behind real event source mappings: ministack runs the functions.

The intake queue is read by an old function writing to the old table. ``cutover hold``
disables its mapping; 200 messages sent meanwhile reach neither table. ``cutover switch
--canary`` feeds the queue to the new function: every message reaches the new table exactly
as sent, none the old one. ``cutover rollback`` gives the queue back to the old function, and
new messages reach the old table again. The commands run in this process, as a user runs
them (no config file: ``--queue`` and ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CliResult, client, ministack_endpoint, run_cli

pytestmark = [pytest.mark.volume, pytest.mark.volume_ci, pytest.mark.integration]
HELD_MESSAGES = 200
HANDLER = """
import os

import botocore.session

_ddb = botocore.session.get_session().create_client("dynamodb")


def handler(event, context):
    for record in event["Records"]:
        _ddb.put_item(
            TableName=os.environ["TABLE"],
            Item={"id": {"S": record["messageId"]}, "body": {"S": record["body"]}},
        )
    return {"batchItemFailures": []}
"""


@pytest.fixture(scope="module")
def ministack() -> Iterator[str]:
    with ministack_endpoint() as url:
        yield url


def wait_for(what: str, check: Callable[[], Any], within: float = 120) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def package() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return out.getvalue()


class Night:
    """The intake queue, its DLQ, two tables, two functions and the old mapping."""

    def __init__(self, endpoint: str, root: Path) -> None:
        self.endpoint, self.root = endpoint, root
        tag = uuid.uuid4().hex[:8]
        self.sqs, self.ddb = client("sqs", endpoint), client("dynamodb", endpoint)
        self.lam, iam = client("lambda", endpoint), client("iam", endpoint)
        dlq = self.sqs.create_queue(QueueName=f"intake-{tag}-dlq")["QueueUrl"]
        dlq_arn = self.arn(dlq)
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}
        self.queue = f"intake-{tag}"
        self.url = self.sqs.create_queue(
            QueueName=self.queue,
            Attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action":
                 "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
        role = iam.create_role(
            RoleName=f"consumer-{tag}", AssumeRolePolicyDocument=json.dumps(trust)
        )
        consume = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes"], "Resource": self.arn(self.url)}]}  # fmt: skip
        iam.put_role_policy(
            RoleName=f"consumer-{tag}", PolicyName="consume", PolicyDocument=json.dumps(consume)
        )
        self.tables: dict[str, str] = {}
        for side in ("old", "new"):
            table = f"{side}-service-{tag}"
            self.ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            self.tables[side] = table
            self.lam.create_function(
                FunctionName=f"{side}-{tag}",
                Runtime="python3.12",
                Role=role["Role"]["Arn"],
                Handler="app.handler",
                Code={"ZipFile": package()},
                Timeout=5,
                Environment={"Variables": {"TABLE": table}},
            )
        self.old, self.new = f"old-{tag}", f"new-{tag}"
        self.lam.create_event_source_mapping(
            EventSourceArn=self.arn(self.url), FunctionName=self.old, Enabled=True, BatchSize=10
        )

    def arn(self, url: str) -> str:
        got = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(got["Attributes"]["QueueArn"])

    def cli(self, *args: str) -> CliResult:
        result = run_cli(self.root, ["cutover", *args, "--queue", self.queue, "-o", "json"],
                         env={"AWS_ENDPOINT_URL": self.endpoint})  # fmt: skip
        return result

    def bodies(self, side: str) -> list[str]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.tables[side])
        return [item["body"]["S"] for page in pages for item in page["Items"]]

    def send(self, bodies: list[str]) -> None:
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(n), "MessageBody": body}
                       for n, body in enumerate(bodies[start : start + 10])]  # fmt: skip
            assert not self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries).get("Failed")

    def waiting(self) -> int:
        got = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])
        a = got["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.mark.timeout(300)
def test_hold_switch_with_a_canary_and_rollback_behind_real_mappings(
    ministack: str, tmp_path: Path
) -> None:
    night = Night(ministack, tmp_path)
    before = [json.dumps({"n": n, "when": "before"}) for n in range(5)]
    night.send(before)
    wait_for("the old service to read the queue", lambda: len(night.bodies("old")) == 5)

    held = night.cli("hold", "--reason", "v2 night")
    assert held.returncode == 0, held.stderr
    assert held.json()["held"] is True

    # exact bodies: decimals as text, unicode, nested JSON
    during = [json.dumps({"n": n, "amount": f"{n}.10", "name": f"Zoë {n}", "tags": ["a", n]})
              for n in range(HELD_MESSAGES)]  # fmt: skip
    night.send(during)
    time.sleep(3)  # longer than a poll of an enabled mapping takes
    assert night.waiting() == HELD_MESSAGES
    assert sorted(night.bodies("old")) == sorted(before) and night.bodies("new") == []
    status = night.cli("status")
    assert status.json()["held"] is True and status.json()["depth"] == HELD_MESSAGES

    switched = night.cli("switch", "--to", night.new, "--canary", "1", "--canary-wait", "3")
    assert switched.returncode == 0, switched.stderr
    assert switched.json()["canary"]["ok"] is True
    wait_for(
        "the new service to read the backlog", lambda: len(night.bodies("new")) >= HELD_MESSAGES
    )
    wait_for("the queue to drain", lambda: night.waiting() == 0, within=60)
    assert sorted(night.bodies("new")) == sorted(during)  # each exactly once, exactly as sent
    assert sorted(night.bodies("old")) == sorted(before)

    rolled = night.cli("rollback")
    assert rolled.returncode == 0, rolled.stderr
    states = {m["function"]: m["state"] for m in rolled.json()["mappings"]}
    assert states == {night.old: "Enabled", night.new: "Disabled"}
    after = [json.dumps({"n": n, "when": "after"}) for n in range(5)]
    night.send(after)
    wait_for("the old service to read again", lambda: len(night.bodies("old")) == 10)
    assert sorted(night.bodies("old")) == sorted(before + after)
    assert sorted(night.bodies("new")) == sorted(during)
