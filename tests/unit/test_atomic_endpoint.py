"""The embedded endpoint's SQS deletes and sends, and its DynamoDB conditional writes, are
atomic, as AWS's are (``northmigrate.aws.local``), and the patches of moto refuse a moto they
were not written for. (Receives: ``test_atomic_receive.py``.)

Each race is shown on moto's own server (``ThreadedMotoServer``, what ``northmigrate local``
runs), with many threads over HTTP. Short pauses inside moto (in its scan for a receipt
handle; after its item read, before its update is applied) widen the window between a read
and its write so that, unpatched, the race shows on every run, not only on a busy machine.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

import pytest
from botocore.config import Config
from helpers import REPO, aws_client
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer
from moto.sqs.models import Message, Queue, SQSBackend
from packaging.specifiers import SpecifierSet

from northmigrate.aws import local

THREADS = 8
INCREMENTS = 5  # successful compare-and-set increments per thread
KEYS = 10  # items each created by THREADS racing conditional creates
DELETERS = 6  # threads deleting 10 received messages each, at once
SENDERS = 3  # threads sending 5 messages each meanwhile


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


def clients(server: str, service: str) -> Callable[[], Any]:
    """A factory of clients of the server (one per thread)."""

    def make() -> Any:
        return aws_client(
            service,
            endpoint_url=server,
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
            config=Config(max_pool_connections=THREADS, retries={"max_attempts": 0}),
        )

    return make


@pytest.fixture
def dynamodb(server: str) -> Callable[[], Any]:
    return clients(server, "dynamodb")


@pytest.fixture
def table(dynamodb: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"t-{time.monotonic_ns()}"
    dynamodb().create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    read, execute = Table.get_item, UpdateExpressionExecutor.execute

    def slow_read(self: Table, *args: Any, **kwargs: Any) -> Any:
        item = read(self, *args, **kwargs)
        time.sleep(0.001)  # a create: between the read that finds no item and the write
        return item

    def slow_execute(self: UpdateExpressionExecutor, node: Any = None) -> Any:
        if node is None:  # the whole update (it recurses over its nodes)
            time.sleep(0.001)  # an update: between the condition check and the change
        return execute(self, node)

    monkeypatch.setattr(Table, "get_item", slow_read)
    monkeypatch.setattr(UpdateExpressionExecutor, "execute", slow_execute)
    return name


@pytest.fixture(params=["patched", "unpatched"])
def patched(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    local.atomic_dynamodb_requests()
    if request.param == "unpatched":
        monkeypatch.setattr(DynamoHandler, "call_action", DynamoHandler.call_action.__wrapped__)
    return bool(request.param == "patched")


def in_threads(work: Callable[[Any], None], make: Callable[[], Any], n: int = THREADS) -> None:
    """``work(client)`` on ``n`` threads started at once, each with its own client."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def run() -> None:
        client = make()
        start.wait()
        try:
            work(client)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.fixture(params=["patched", "unpatched"])
def sqs_patched(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    local.atomic_sqs_writes()
    read = Message.had_receipt_handle

    def slow_read(self: Message, receipt_handle: str) -> bool:
        time.sleep(0.0002)  # a delete scans every message for its receipt handle
        return read(self, receipt_handle)

    monkeypatch.setattr(Message, "had_receipt_handle", slow_read)
    if request.param == "unpatched":
        for name in local._SQS_WRITES:
            monkeypatch.setattr(SQSBackend, name, getattr(SQSBackend, name).__wrapped__)
    return bool(request.param == "patched")


def test_concurrent_deletes_and_sends_lose_nothing_and_bring_nothing_back(
    sqs_patched: bool, server: str
) -> None:
    """Deletes of received messages on several threads at once, and sends meanwhile: what is
    left is exactly what was sent meanwhile (moto alone puts deleted messages back, which SQS
    would deliver again, or drops a message sent during a delete)."""
    make = clients(server, "sqs")
    sqs = make()
    url = sqs.create_queue(QueueName=f"q-{time.monotonic_ns()}")["QueueUrl"]
    for start in range(0, DELETERS * 10, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "MessageBody": f"old {start + n}"} for n in range(10)],
        )
    held: list[str] = []
    while len(held) < DELETERS * 10:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        held += [m["ReceiptHandle"] for m in got.get("Messages", [])]
    batches = [held[n : n + 10] for n in range(0, len(held), 10)]
    work = iter(range(DELETERS + SENDERS))
    lock = threading.Lock()

    def delete_or_send(client: Any) -> None:
        with lock:
            n = next(work)
        if n < DELETERS:
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batches[n])]
            answer = client.delete_message_batch(QueueUrl=url, Entries=entries)
            assert len(answer.get("Successful", [])) == 10, answer
        else:
            for i in range(5):
                client.send_message(QueueUrl=url, MessageBody=f"new {n}-{i}")

    in_threads(delete_or_send, make, DELETERS + SENDERS)

    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    left = {k: int(v) for k, v in attrs.items()}
    sent_meanwhile = {"ApproximateNumberOfMessages": 5 * SENDERS}
    if sqs_patched:
        assert left == sent_meanwhile | {"ApproximateNumberOfMessagesNotVisible": 0}
    else:  # deleted messages back in flight (delivered again later), or a send lost
        assert left != sent_meanwhile | {"ApproximateNumberOfMessagesNotVisible": 0}


def test_compare_and_set_increments_are_never_lost(
    patched: bool, table: str, dynamodb: Callable[[], Any]
) -> None:
    dynamodb().put_item(TableName=table, Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    applied: list[int] = []
    lock = threading.Lock()

    def increment(client: Any) -> None:
        done = 0
        while done < INCREMENTS:
            item = client.get_item(TableName=table, Key={"pk": {"S": "counter"}})["Item"]
            old = int(item["n"]["N"])
            try:
                client.update_item(
                    TableName=table,
                    Key={"pk": {"S": "counter"}},
                    UpdateExpression="SET n = :new",
                    ConditionExpression="n = :old",
                    ExpressionAttributeValues={
                        ":old": {"N": str(old)},
                        ":new": {"N": str(old + 1)},
                    },
                )
            except client.exceptions.ConditionalCheckFailedException:
                continue
            done += 1
            with lock:
                applied.append(old)

    in_threads(increment, dynamodb)

    final = dynamodb().get_item(TableName=table, Key={"pk": {"S": "counter"}})["Item"]
    counter = int(final["n"]["N"])
    assert len(applied) == THREADS * INCREMENTS
    if patched:  # each success moved the counter on from the value it saw: no two the same
        assert counter == THREADS * INCREMENTS
        assert sorted(applied) == list(range(THREADS * INCREMENTS))
    else:  # moto alone: several writes passed the same check, increments were lost
        assert counter < THREADS * INCREMENTS


def test_a_conditional_create_succeeds_once(
    patched: bool, table: str, dynamodb: Callable[[], Any]
) -> None:
    """The chaos plugin's write: `attribute_not_exists(pk)` with `ADD effects 1`."""
    created: list[str] = []
    lock = threading.Lock()

    def create(client: Any) -> None:
        for n in range(KEYS):
            try:
                client.update_item(
                    TableName=table,
                    Key={"pk": {"S": f"R-{n}"}},
                    UpdateExpression="SET v = :v ADD effects :one",
                    ConditionExpression="attribute_not_exists(pk)",
                    ExpressionAttributeValues={":v": {"S": "x"}, ":one": {"N": "1"}},
                )
            except client.exceptions.ConditionalCheckFailedException:
                continue
            with lock:
                created.append(f"R-{n}")

    in_threads(create, dynamodb)

    items = dynamodb().scan(TableName=table, ConsistentRead=True)["Items"]
    effects = {item["pk"]["S"]: int(item["effects"]["N"]) for item in items}
    assert set(effects) == {f"R-{n}" for n in range(KEYS)}
    if patched:
        assert effects == {f"R-{n}": 1 for n in range(KEYS)}  # the table's counter says once
        assert sorted(created) == sorted(effects)  # and so do the writers
    else:  # moto alone: more writers than items were told their create succeeded (and,
        # as the race falls, a counter may have been incremented twice)
        assert len(created) > KEYS, (created, effects)


# -- the patches and the moto they were written for ---------------------------------------


def test_moto_is_within_the_versions_the_patches_were_checked_against() -> None:
    tested = SpecifierSet(",".join(local.MOTO_TESTED))
    assert version("moto") in tested, (
        f"moto {version('moto')} is outside {tested}: review northmigrate.aws.local's patches "
        "(run tests/unit/test_atomic_endpoint.py and test_atomic_receive.py), then move "
        "MOTO_TESTED and pyproject's bound together"
    )
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    local_extra = pyproject["project"]["optional-dependencies"]["local"]
    motos = [r for r in local_extra if r.startswith("moto")]
    assert motos == [f"moto[server]{','.join(local.MOTO_TESTED)}"]


def test_a_receive_of_another_shape_is_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def receive_message(self: Any, queue_name: str, count: int, wait: int) -> Any:
        raise AssertionError("not called")

    monkeypatch.setattr(local, "_patched", set())
    monkeypatch.setattr(SQSBackend, "receive_message", receive_message)
    with pytest.raises(local.MotoChanged, match=r"SQSBackend\.receive_message"):
        local.atomic_sqs_receives()
    assert SQSBackend.receive_message is receive_message


def test_a_queue_without_motos_in_flight_set_is_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receive = SQSBackend.receive_message
    monkeypatch.setattr(local, "_patched", set())
    monkeypatch.delattr(Queue, "pending_message_groups")
    with pytest.raises(local.MotoChanged, match=r"in-flight messages of an sqs Queue"):
        local.atomic_sqs_receives()
    assert SQSBackend.receive_message is receive


def test_a_dynamodb_handler_of_another_shape_is_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local, "_patched", set())
    monkeypatch.delattr(DynamoHandler, "call_action")
    with pytest.raises(local.MotoChanged, match=r"DynamoHandler\.call_action"):
        local.atomic_dynamodb_requests()
    assert "call_action" not in DynamoHandler.__dict__


def test_sqs_writes_of_another_shape_are_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local, "_patched", set())
    monkeypatch.delattr(SQSBackend, "delete_message_batch")
    with pytest.raises(local.MotoChanged, match=r"delete_message_batch not found"):
        local.atomic_sqs_writes()


def test_the_prompt_sqs_clock_reads_the_same_time_as_motos_own() -> None:
    from moto.core import utils
    from moto.sqs import models

    local.prompt_sqs_clock()  # conftest did already: idempotent
    assert models.unix_time is not utils.unix_time  # patched
    for _ in range(100):  # each read between two of moto's own: the same clock, whatever the load
        before = utils.unix_time_millis()
        prompt = models.unix_time_millis()
        after = utils.unix_time_millis()
        assert before - 1 <= prompt <= after + 1  # to the millisecond
        before_s = utils.unix_time()
        prompt_s = models.unix_time()
        after_s = utils.unix_time()
        assert before_s - 0.001 <= prompt_s <= after_s + 0.001
    moment = utils.utcnow()
    assert models.unix_time(moment) == utils.unix_time(moment)  # with an argument: moto's own
    assert models.unix_time_millis(moment) == utils.unix_time_millis(moment)
    for name in ("VisibilityTimeout", "ApproximateNumberOfMessagesNotVisible", "FifoQueue"):
        assert models.camelcase_to_underscores(name) == utils.camelcase_to_underscores(name)


def test_visibility_and_delay_follow_the_prompt_clock() -> None:
    from moto.sqs import models

    message = Message("m-1", "body")
    before = models.unix_time_millis()
    message.change_visibility(30)
    now = models.unix_time_millis()
    assert not message.visible and before + 30_000 <= message.visible_at <= now + 30_000
    message.change_visibility(0)
    time.sleep(0.01)
    assert message.visible
    message.delay(30)
    assert message.delayed
    message.delay(0)
    time.sleep(0.01)
    assert not message.delayed


def test_an_sqs_clock_of_another_shape_is_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.sqs import models

    def unix_time(dt: Any = None) -> float:
        raise AssertionError("not called")

    monkeypatch.setattr(local, "_patched", set())
    monkeypatch.setattr(models, "unix_time", unix_time)
    with pytest.raises(local.MotoChanged, match=r"clock and names of moto\.sqs\.models"):
        local.prompt_sqs_clock()
    assert models.unix_time is unix_time
