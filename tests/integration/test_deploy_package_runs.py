"""The built package works on its own: unpacked into an empty directory, imported by a clean
interpreter (``python -I -S``: no site-packages, nothing but the standard library and the
package), its handler migrates a synthetic SQS event against the moto server.

The package is built for this machine (``arch = "host"``) with boto3 bundled, since the test
interpreter, unlike the Lambda runtime, has no boto3 of its own; a Lambda build differs only
in where its binary wheels come from (see test_deploy_package in tests/unit).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, cli_env

from northmigrate.config import load_settings
from northmigrate.deploy import build_options
from northmigrate.deploy.package import build_package
from northmigrate.deploy.spec import environment
from northmigrate.records import envelope
from northmigrate.records.sample import generate

pytestmark = pytest.mark.integration

BASE = next(iter(generate(1, seed=11)))

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
assert not [p for p in sys.path if "site-packages" in p], sys.path
import pydantic, boto3
assert pydantic.__file__.startswith(sys.argv[1]) and boto3.__file__.startswith(sys.argv[1])
from northmigrate.aws_lambda import handler

class Context:
    def get_remaining_time_in_millis(self):
        return 60_000

event = json.loads(sys.stdin.read())
print(json.dumps(handler(event, Context())))
"""


def record(n: int, **business: str) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["application_id"] = f"APP-{n:06d}"
    out["status"] = "submitted"
    out["business"]["address"].update(region=business.get("region", "BC"), country="CA")
    out["business"]["business_type"] = business.get("business_type", "llc")
    return out


def sqs_record(n: int, body: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "messageId": f"m-{n}",
        "receiptHandle": f"rh-{n}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def body(rec: dict[str, Any]) -> str:
    return envelope.Envelope(
        migration="onboarding-v2", record_id=rec["application_id"], record=rec
    ).to_body()


def test_the_unpacked_package_migrates_an_event_in_a_clean_interpreter(
    project: Project, tmp_path: Path
) -> None:
    project.options.update(outage_regions=["ON"], unsupported_business_types=["partnership"])
    project.worker_settings.update(backoff_base_s=0)  # the retry's copy: receivable at once
    project.write_config()
    project.cli("provision", check=True)  # queues and table; no function, no mapping
    settings = load_settings(project.root / "northmigrate.toml", env={})
    options = build_options(settings, cwd=project.root)
    built = build_package(replace(options, arch="host", bundle_boto3=True), tmp_path / "p.zip")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(unpacked)

    event = {
        "Records": [
            sqs_record(1, body(record(1))),
            sqs_record(2, body(record(2, region="ON"))),  # transient: retry
            sqs_record(3, body(record(3, business_type="partnership"))),  # permanent
            sqs_record(4, body(record(4))),
            sqs_record(5, "{broken"),  # unreadable
        ]
    }
    env = cli_env(environment(settings))
    env.pop("PYTHONPATH")
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, str(unpacked)],
        input=json.dumps(event),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The transient failure's retry is a delayed copy in the main queue, confirmed by SQS:
    # nothing for the mapping to redeliver.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
    [retry] = [json.loads(m["Body"]) for m in project.drain(wait=5)]
    assert (retry["record_id"], retry["attempts"]) == ("APP-000002", 1)
    migrated = {item["application_id"]["S"] for item in project.table_items()}
    assert migrated == {"APP-000001", "APP-000004"}
    dead = project.drain(project.dlq_name)
    reasons = {
        m["Body"] if m["Body"] == "{broken" else json.loads(m["Body"])["record_id"]: m[
            "MessageAttributes"
        ]["northmigrate.reason"]["StringValue"]
        for m in dead
    }
    assert reasons == {
        "APP-000003": "PermanentError: the new service does not accept business_type "
        "'partnership' yet",
        "{broken": "EnvelopeError: message body is not JSON",
    }
