"""Where the shards of a fan-out keep what outlives one Lambda invocation: one prefix per run
in the fan-out bucket (``deploy.fan_out_bucket``)::

    s3://BUCKET/northmigrate/fan-out/RUN_ID/shards.json            the Map's items
    s3://BUCKET/northmigrate/fan-out/RUN_ID/shard-I-of-N/state.json   where an unfinished
                                                                  shard resumes, its counts
    s3://BUCKET/northmigrate/fan-out/RUN_ID/shard-I-of-N/report.json  a finished shard's counts
    s3://BUCKET/northmigrate/fan-out/RUN_ID/shard-I-of-N/rejects-A.jsonl  attempt A's rejects

Every object is written with server-side encryption: a rejects file holds the original
records, sensitive fields included (as a local ``--rejects`` file does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from northmigrate.aws.clients import AWS_EXCEPTIONS, error_code, translate
from northmigrate.errors import InputError
from northmigrate.sources.shard import Shard

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "northmigrate/fan-out"
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True, slots=True)
class RunStore:
    """The prefix of one fan-out run."""

    bucket: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{PREFIX}/{self.run_id}/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def shards_key(self) -> str:
        return self.prefix + "shards.json"

    def shard_prefix(self, shard: Shard) -> str:
        return f"{self.prefix}shard-{shard.index}-of-{shard.count}/"

    @classmethod
    def from_uri(cls, uri: str) -> RunStore:
        rest = uri.removeprefix("s3://")
        bucket, _, key = rest.partition("/")
        run_id = key.removeprefix(PREFIX + "/").strip("/")
        if not uri.startswith("s3://") or not bucket or not key.startswith(PREFIX) or not run_id:
            raise InputError(f"{uri!r} is not a fan-out run's store (s3://BUCKET/{PREFIX}/RUN/)")
        return cls(bucket, run_id)


class ShardStore:
    """One shard's objects in its run's store."""

    def __init__(self, s3: S3Client, run: RunStore, shard: Shard) -> None:
        self.s3 = s3
        self.run = run
        self.shard = shard
        self.prefix = run.shard_prefix(shard)

    def _get(self, name: str) -> dict[str, Any] | None:
        key = self.prefix + name
        try:
            body = self.s3.get_object(Bucket=self.run.bucket, Key=key)["Body"].read()
        except AWS_EXCEPTIONS as exc:
            if error_code(exc) in _MISSING:
                return None
            raise translate(exc, f"S3 GetObject s3://{self.run.bucket}/{key}") from exc
        data = json.loads(body)
        return data if isinstance(data, dict) else None

    def _put(self, name: str, body: bytes, content_type: str) -> str:
        key = self.prefix + name
        try:
            self.s3.put_object(
                Bucket=self.run.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="AES256",
            )
        except AWS_EXCEPTIONS as exc:
            raise translate(exc, f"S3 PutObject s3://{self.run.bucket}/{key}") from exc
        return f"s3://{self.run.bucket}/{key}"

    def state(self) -> dict[str, Any] | None:
        """Where the shard resumes (None: it never stopped part-way)."""
        return self._get("state.json")

    def report(self) -> dict[str, Any] | None:
        """The finished shard's counts (None: it has not finished)."""
        return self._get("report.json")

    def save_state(self, state: dict[str, Any]) -> None:
        self._put("state.json", json.dumps(state).encode(), "application/json")

    def save_report(self, report: dict[str, Any]) -> None:
        self._put("report.json", json.dumps(report).encode(), "application/json")

    def put_rejects(self, path: Path, attempt: int) -> str:
        return self._put(f"rejects-{attempt}.jsonl", path.read_bytes(), "application/x-ndjson")


__all__ = ["PREFIX", "RunStore", "ShardStore"]
