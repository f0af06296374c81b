"""Example migration: onboarding applications into the new service's DynamoDB table.

The new service stores data single-table style: partitioned by customer
(``pk = CUSTOMER#<customer_id>``) and sorted by time
(``sk = ONBOARDING#<submitted_at>#<application_id>``), so one customer's applications sit
together, newest last.

Idempotency: each item carries ``source_hash``, a digest of the record. The write is
conditional: it succeeds when no item is there or the one there has the same hash (a repeat
delivery, or a redrive of a record already migrated), and fails with a ``PermanentError``
when a *different* version is there (a conflict a person must look at). It keys on the
record, never on the SQS message id, which changes when a message is redriven.

Options (``[migration.options]``):

- ``table``: the target table (default ``onboarding-v2``);
- ``outage_regions``: simulate an outage of the new service for businesses in these
  regions (a transient error: retried, then dead-lettered); the demo's "bad day";
- ``unsupported_business_types``: business types the new service "cannot take yet"
  (a PermanentError: dead-lettered at once); the demo's "bug that a fix ships for".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from northmigrate.aws import error_code
from northmigrate.plugin import (
    Migration,
    MigrationContext,
    PermanentError,
    SetupResult,
    TargetUnavailable,
)

DEFAULT_TABLE = "onboarding-v2"


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class BusinessType(StrEnum):
    SOLE_PROPRIETORSHIP = "sole_proprietorship"
    LLC = "llc"
    CORPORATION = "corporation"
    PARTNERSHIP = "partnership"
    NONPROFIT = "nonprofit"


Text = Annotated[str, Field(min_length=1, max_length=120)]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", max_length=254)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ().-]{7,20}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Strict):
    line1: Text
    line2: str | None = None
    city: Text
    region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    postal_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9 -]{3,10}$")]
    country: Literal["US", "CA"]


class Owner(_Strict):
    first_name: Text
    last_name: Text
    date_of_birth: date
    tax_id: Annotated[str, Field(pattern=r"^\d{3}-\d{2}-\d{4}$")]
    ownership_pct: Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)]
    email: Email
    phone: Phone


class Business(_Strict):
    legal_name: Text
    dba: str | None = None
    business_type: BusinessType
    ein: Annotated[str, Field(pattern=r"^\d{2}-\d{7}$")]
    incorporated_on: date | None = None
    industry: Text
    address: Address


class Contact(_Strict):
    email: Email
    phone: Phone


class OnboardingRecord(_Strict):
    application_id: Annotated[str, Field(pattern=r"^APP-\d{6,}$")]
    customer_id: Annotated[str, Field(pattern=r"^CUS-[0-9A-F]{8}$")]
    status: Status
    submitted_at: AwareDatetime
    business: Business
    owners: Annotated[list[Owner], Field(min_length=1, max_length=10)]
    contact: Contact
    requested_products: list[Literal["checking", "debit_card", "invoicing", "envelopes"]] = []
    annual_revenue: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None
    referral_code: str | None = None

    @model_validator(mode="after")
    def _ownership_adds_up(self) -> OnboardingRecord:
        if sum(owner.ownership_pct for owner in self.owners) > 100:
            raise ValueError("owners' ownership_pct adds up to more than 100")
        for owner in self.owners:
            if owner.date_of_birth >= self.submitted_at.date():
                raise ValueError("an owner's date_of_birth is not before submitted_at")
        return self


SENSITIVE = (
    "owners.first_name",
    "owners.last_name",
    "owners.date_of_birth",
    "owners.tax_id",
    "owners.email",
    "owners.phone",
    "business.ein",
    "contact.email",
    "contact.phone",
)
ELIGIBLE = {Status.SUBMITTED, Status.APPROVED}


def eligible(record: OnboardingRecord) -> bool:
    """Only submitted and approved applications move to the new service."""
    return record.status in ELIGIBLE


def source_hash(record: OnboardingRecord) -> str:
    canonical = json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def item_key(record: OnboardingRecord) -> dict[str, str]:
    stamp = record.submitted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "pk": f"CUSTOMER#{record.customer_id}",
        "sk": f"ONBOARDING#{stamp}#{record.application_id}",
    }


def to_item(record: OnboardingRecord) -> dict[str, Any]:
    """The new service's item: DynamoDB numbers as Decimal, no empty strings or None."""
    body = json.loads(record.model_dump_json(exclude_none=True), parse_float=Decimal)
    return {
        **item_key(record),
        "entity": "onboarding_application",
        **body,
        "source_hash": source_hash(record),
        "migrated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def table_name(options: Mapping[str, Any]) -> str:
    return str(options.get("table", DEFAULT_TABLE))


def migrate(record: OnboardingRecord, ctx: MigrationContext) -> None:
    options = ctx.options
    region = record.business.address.region
    if region in options.get("outage_regions", ()):
        raise TargetUnavailable(
            f"onboarding service unavailable for region {region} (simulated outage)"
        )
    kind = record.business.business_type.value
    if kind in options.get("unsupported_business_types", ()):
        raise PermanentError(f"the new service does not accept business_type {kind!r} yet")
    dynamodb = ctx.aws.client("dynamodb")
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    item = {key: serialize(value) for key, value in to_item(record).items()}
    try:
        dynamodb.put_item(
            TableName=table_name(options),
            Item=item,
            ConditionExpression="attribute_not_exists(pk) OR source_hash = :h",
            ExpressionAttributeValues={":h": item["source_hash"]},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException as exc:
        raise PermanentError(
            f"conflict: {table_name(options)} already holds a different version of "
            f"{record.application_id}"
        ) from exc


def verify(record: OnboardingRecord, ctx: MigrationContext) -> bool:
    """Present in the target with the same content (reconcile)."""
    found = ctx.aws.client("dynamodb").get_item(
        TableName=table_name(ctx.options),
        Key={key: {"S": value} for key, value in item_key(record).items()},
        ProjectionExpression="source_hash",
        ConsistentRead=True,
    )
    return bool(found.get("Item", {}).get("source_hash", {}).get("S") == source_hash(record))


def verify_batch(records: Sequence[OnboardingRecord], ctx: MigrationContext) -> list[bool]:
    """``verify`` for up to 100 records with BatchGetItem (unprocessed keys are asked again)."""
    dynamodb = ctx.aws.client("dynamodb")
    table = table_name(ctx.options)
    wanted = [((k["pk"], k["sk"]), source_hash(r)) for r in records for k in [item_key(r)]]
    found: dict[tuple[str, str], str] = {}
    keys = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in dict(wanted)]
    request: dict[str, Any] = {
        table: {"Keys": keys, "ProjectionExpression": "pk, sk, source_hash", "ConsistentRead": True}
    }
    for _ in range(10):
        response = dynamodb.batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(table, []):
            found[(item["pk"]["S"], item["sk"]["S"])] = item.get("source_hash", {}).get("S", "")
        request = response.get("UnprocessedKeys") or {}
        if not request:
            break
    else:
        raise TargetUnavailable("BatchGetItem left keys unprocessed after 10 tries")
    return [found.get(key) == digest for key, digest in wanted]


def setup(ctx: MigrationContext) -> Sequence[SetupResult]:
    """Create the target table (on demand capacity) if it is missing."""
    dynamodb = ctx.aws.client("dynamodb")
    name = table_name(ctx.options)
    try:
        dynamodb.describe_table(TableName=name)
        return [SetupResult("table", name, "unchanged")]
    except dynamodb.exceptions.ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True},
    )
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return [SetupResult("table", name, "created")]


def iam_statements(options: Mapping[str, Any], region: str, account: str) -> list[dict[str, Any]]:
    """What the function's role may do: what ``migrate`` calls, a conditional PutItem on the
    target table, and nothing else. ``verify`` and ``verify_batch`` (GetItem, BatchGetItem)
    run in ``reconcile`` and ``setup`` (DescribeTable, CreateTable) in ``provision``, both
    with the operator's credentials, never on Lambda: they are not granted here."""
    arn = f"arn:aws:dynamodb:{region}:{account}:table/{table_name(options)}"
    return [{"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": arn}]


migration = Migration(
    name="onboarding-v2",
    model=OnboardingRecord,
    key="application_id",
    handler=migrate,
    eligible=eligible,
    verify=verify,
    sensitive=SENSITIVE,
    version="1",
    setup=setup,
    iam_statements=iam_statements,
    verify_batch=verify_batch,
)
