"""The test plugin the chaos scenario writes into the project directory (as ``chaos_plugin``).

A record ``{"rid", "n", "payload"}`` is migrated into a DynamoDB table (``pk`` = the record
id) with one conditional ``UpdateItem``: it sets the item and adds 1 to its ``effects``
counter only when no item is there, so ``effects`` is the number of times the record's
migration took effect; a redelivery of a migrated record finds the item (same ``rec_hash``)
and is a no-op. The handler:

- raises ``PermanentError("known-permanent: ...")`` for the ids in ``options.permanent``,
  unless ``options.fixed`` (the fix);
- fails transiently at ``options.transient_rate``, drawn from a seeded hash of
  (record, attempt, message id): half of those failures come before the write, half after
  it (the write happened, the handler still failed: the retry must be a no-op);
- appends one JSON line per event to ``runs.log`` next to the module (``O_APPEND``: lines
  from concurrent processes never interleave): ``effect``, ``noop``, ``transient``,
  ``permanent``.
"""

PLUGIN = r'''
import hashlib
import json
import os
import random
from pathlib import Path

from pydantic import BaseModel

from northmigrate import Migration, MigrationContext, PermanentError
from northmigrate.aws.clients import error_code
from northmigrate.plugin import SetupResult

LOG = Path(__file__).with_name("runs.log")


class Record(BaseModel):
    rid: str
    n: int
    payload: str


class Flaky(Exception):
    """The target did not answer (transient)."""


def digest(record: Record) -> str:
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()


def log(event: str, record: Record, ctx: MigrationContext) -> None:
    line = json.dumps({"rid": record.rid, "event": event, "attempt": ctx.attempt,
                       "message_id": ctx.message_id, "pid": os.getpid()})
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def write(record: Record, ctx: MigrationContext) -> None:
    ddb = ctx.aws.client("dynamodb")
    table = ctx.options["table"]
    h = digest(record)
    try:
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": record.rid}},
            UpdateExpression="SET rec_hash = :h, payload = :p, n = :n ADD effects :one",
            ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeValues={
                ":h": {"S": h}, ":p": {"S": record.payload}, ":n": {"N": str(record.n)},
                ":one": {"N": "1"},
            },
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        found = ddb.get_item(TableName=table, Key={"pk": {"S": record.rid}}, ConsistentRead=True)
        if found.get("Item", {}).get("rec_hash", {}).get("S") != h:
            raise PermanentError(f"conflict: {table} holds another version of {record.rid}")
        log("noop", record, ctx)  # already migrated: a redelivery changes nothing
        return
    log("effect", record, ctx)


def migrate(record: Record, ctx: MigrationContext) -> None:
    options = ctx.options
    if record.rid in options.get("permanent", ()) and not options.get("fixed", False):
        log("permanent", record, ctx)
        raise PermanentError(f"known-permanent: {record.rid} needs the fix")
    draw = random.Random(f"{options.get('seed', 0)}|{record.rid}|{ctx.attempt}|{ctx.message_id}")
    flaky = draw.random() < float(options.get("transient_rate", 0))
    if flaky and draw.random() < 0.5:
        log("transient", record, ctx)
        raise Flaky(f"target busy before writing {record.rid}")
    write(record, ctx)
    if flaky:
        log("transient", record, ctx)
        raise Flaky(f"target busy after writing {record.rid}")


def verify(record: Record, ctx: MigrationContext) -> bool:
    found = ctx.aws.client("dynamodb").get_item(
        TableName=ctx.options["table"], Key={"pk": {"S": record.rid}}, ConsistentRead=True
    )
    return bool(found.get("Item", {}).get("rec_hash", {}).get("S") == digest(record))


def verify_batch(records, ctx):
    ddb = ctx.aws.client("dynamodb")
    table = ctx.options["table"]
    found = {}
    request = {table: {"Keys": [{"pk": {"S": r.rid}} for r in {r.rid: r for r in records}.values()],
                       "ConsistentRead": True}}
    while request:
        response = ddb.batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(table, []):
            found[item["pk"]["S"]] = item.get("rec_hash", {}).get("S")
        request = response.get("UnprocessedKeys") or {}
    return [found.get(r.rid) == digest(r) for r in records]


def setup(ctx: MigrationContext):
    ddb = ctx.aws.client("dynamodb")
    name = ctx.options["table"]
    try:
        ddb.describe_table(TableName=name)
        return [SetupResult("table", name, "unchanged")]
    except ddb.exceptions.ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    return [SetupResult("table", name, "created")]


migration = Migration(
    name="chaos-v1", model=Record, key="rid", handler=migrate, verify=verify,
    verify_batch=verify_batch, setup=setup,
)
'''
