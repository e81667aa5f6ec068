"""tools.moto_server: the offline stack's moto stays atomic (one request at a time), fair, and
quick enough under load that the handlers' bounded boto clients never time out waiting for it
(a moto read timeout once became an ingest 500 at 1 000 messages)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb import models
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from tools.moto_server import (
    FAKE_CREDENTIALS,
    FairLock,
    Serialised,
    faithful_transactions,
    moto_server,
)


@pytest.fixture
def patched_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """faithful_transactions() on the in-process moto, undone afterwards; table copies counted."""
    monkeypatch.setattr(models, "copy", models.copy)
    monkeypatch.setattr(
        models.DynamoDBBackend, "transact_write_items", models.DynamoDBBackend.transact_write_items
    )
    monkeypatch.setattr(DynamoHandler, "transact_write_items", DynamoHandler.transact_write_items)
    copies: list[Table] = []

    def counted(self: Table, memo: dict[int, Any]) -> Table:
        copies.append(self)
        clone = Table.__new__(Table)
        clone.__dict__.update(self.__dict__)
        return clone

    monkeypatch.setattr(Table, "__deepcopy__", counted, raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        yield dynamodb, copies


def _key(pk: str, sk: str = "A") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_moto_copies_the_whole_table_for_a_transaction_unless_patched(patched_moto: Any) -> None:
    """What made moto slow: every TransactWriteItems deep-copies each table it touches (the
    whole table, once per item), which grows with the run and holds every other request."""
    dynamodb, copies = patched_moto
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": _key("a")}}])
    assert copies, "moto no longer copies tables: faithful_transactions may be unneeded"
    copies.clear()
    faithful_transactions()
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": _key("b")}}])
    assert copies == []
    assert dynamodb.get_item(TableName="t", Key=_key("b"))["Item"] == _key("b")


def test_a_cancelled_transaction_still_changes_nothing(patched_moto: Any) -> None:
    dynamodb, _ = patched_moto
    faithful_transactions()
    dynamodb.put_item(TableName="t", Item={**_key("kept"), "n": {"N": "1"}})
    dynamodb.put_item(TableName="t", Item={**_key("guard"), "state": {"S": "claimed"}})
    with pytest.raises(ClientError) as error:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": _key("new")}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": _key("kept"),
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {
                    "Delete": {"TableName": "t", "Key": _key("gone-not")},
                },
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": _key("guard"),
                        "ConditionExpression": "#s = :sent",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": {":sent": {"S": "sent"}},
                    }
                },
            ]
        )
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in dynamodb.get_item(TableName="t", Key=_key("new"))
    assert dynamodb.get_item(TableName="t", Key=_key("kept"))["Item"]["n"] == {"N": "1"}
    assert dynamodb.get_item(TableName="t", Key=_key("guard"))["Item"]["state"] == {"S": "claimed"}


def test_a_retried_transaction_is_applied_once_as_dynamodb_does(patched_moto: Any) -> None:
    """botocore keeps a TransactWriteItems' ClientRequestToken across its retries; DynamoDB
    answers a repeat of an applied token with success and writes nothing. moto re-ran it: a
    claim whose answer timed out came back as a conflict with itself."""
    dynamodb, _ = patched_moto
    faithful_transactions()
    claim = {
        "Put": {
            "TableName": "t",
            "Item": {**_key("root", "ATTEMPT#001"), "state": {"S": "claimed"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    dynamodb.transact_write_items(TransactItems=[claim], ClientRequestToken="retry-1")
    dynamodb.transact_write_items(TransactItems=[claim], ClientRequestToken="retry-1")  # no error
    with pytest.raises(ClientError) as error:  # another caller's claim still conflicts
        dynamodb.transact_write_items(TransactItems=[claim], ClientRequestToken="other-2")
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_the_lock_serves_in_arrival_order() -> None:
    lock = FairLock()
    order: list[int] = []
    threads = []
    with lock:
        for n in range(6):
            thread = threading.Thread(target=lambda n=n: _enter(lock, order, n))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 5
            while lock._next != n + 2 and time.monotonic() < deadline:  # queued behind us
                time.sleep(0.001)
    for thread in threads:
        thread.join(timeout=5)
    assert order == list(range(6))


def _enter(lock: FairLock, order: list[int], n: int) -> None:
    with lock:
        order.append(n)


def test_slow_requests_are_logged(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(1.1)
        start_response("200 OK", [])
        return [b"{}"]

    Serialised(app, log)({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Scan"}, lambda *a: None)
    Serialised(lambda e, s: [b""], log)({}, lambda *a: None)  # quick: not logged
    [line] = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["operation"] == "DynamoDB_20120810.Scan"
    assert entry["served"] >= 1.0


@pytest.mark.slow
def test_the_server_survives_ctrl_c_of_its_parent(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group; moto must outlive it so that the offline run can
    still read the table and print its report."""
    import os
    import signal

    with moto_server(tmp_path / "slow.log") as endpoint:
        port = endpoint.rsplit(":", 1)[1]
        pids = [
            int(p)
            for p in os.listdir("/proc")
            if p.isdigit() and f"tools.moto_server\0-p\0{port}\0" in _cmdline(p)
        ]
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        client = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        assert client.list_queues().get("QueueUrls", []) == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""
