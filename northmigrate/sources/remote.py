"""Sources that live in AWS: ``dynamodb://TABLE`` and ``s3://BUCKET/KEY`` (or ``/PREFIX/``)."""

from __future__ import annotations

from typing import Any

from northmigrate.sources.base import Source, SourceError


def open_remote(name: str, *, clients: Any = None, **options: Any) -> Source:
    raise SourceError(f"{name}: DynamoDB and S3 sources are not supported yet")
