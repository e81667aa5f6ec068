"""A receipt whose DynamoDB write fails after the signature check is spilled, not lost;
SpillFunction replays it through the same record path; only when SQS fails too is it a 5xx.

DynamoDB throttling cannot be provoked in moto (it meters nothing): the fault is injected on the
handler's own client, as botocore raises it for one request (ingest counts its tries itself).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import WorkerLog
from tests.integration.resources import Resources
from tests.lambdas import invoke, load_function, metric_names
from tools.apigw import http_api_event
from tools.lambdas import FakeContext
from tools.samples import receipt_fields, sid
from tools.sqs_poller import Batch, poll_once
from tools.stack import TEST_AUTH_TOKEN, DeployedStack

THROTTLED = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}


def post(ingest: ModuleType, fields: dict[str, str]) -> int:
    status: int = invoke(ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))["statusCode"]
    return status


def throttle(ingest: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def update_item(**kwargs: Any) -> Any:
        calls.append(kwargs["Key"]["pk"]["S"])
        raise ClientError(THROTTLED, "UpdateItem")

    monkeypatch.setattr(ingest.ingest.recorder._receipts._db, "update_item", update_item)
    return calls


@pytest.fixture
def spill(stack: DeployedStack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_function("spill", stack.environment("SpillFunction"), monkeypatch)


def peek(url: str) -> list[dict[str, Any]]:
    """The queue's messages, left visible (Resources.queued hides them for 30 s)."""
    answer = boto3.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def replay(spill: ModuleType, url: str) -> Batch:
    return poll_once(boto3.client("sqs"), url, spill.lambda_handler)


def test_a_failed_write_is_spilled_answered_200_and_replayed_through_the_same_path(
    ingest: ModuleType,
    spill: ModuleType,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failed = receipt_fields("undelivered", message="spilled", error_code=30003)
    with monkeypatch.context() as patch:
        writes = throttle(ingest, patch)
        assert post(ingest, failed) == 200
        # Two tries of the one write, by ingest itself (its client makes one request a call).
        assert writes == [f"MSG#{sid('IM', 'spilled')}"] * 2
    emitted = metric_names(capsys.readouterr().out)
    assert "SpilledReceipts" in emitted
    assert "IngestFaults" not in emitted
    assert resources.items() == []
    spill_url = resources.stack.outputs["SpillQueueUrl"]
    [body] = peek(spill_url)
    assert body["event"]["message_sid"] == sid("IM", "spilled")
    assert body["event"]["status"] == "undelivered"
    assert peek(resources.queue_url) == []  # no retry job before the receipt is stored

    batch = replay(spill, spill_url)
    assert (batch.received, batch.failed) == (1, [])
    [item] = resources.items()
    assert item["status"] == {"S": "undelivered"}
    assert "retry_pending_at" in item  # the outbox mark, as ingest sets it
    [job] = resources.queued()  # and the retry job, exactly as a webhook's
    assert job["event"]["message_sid"] == sid("IM", "spilled")
    assert {"Receipts", "NewFailures", "SpillReplayed"} <= set(
        metric_names(capsys.readouterr().out)
    )
    assert replay(spill, spill_url).received == 0  # deleted once replayed


def test_a_replayed_receipt_keeps_the_order_of_events(
    ingest: ModuleType,
    spill: ModuleType,
    resources: Resources,
    stack: DeployedStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spilled failure is older than the `delivered` that got through meanwhile: replayed
    later, it is history only, and nothing is queued for a retry."""
    with monkeypatch.context() as patch:
        throttle(ingest, patch)
        assert post(ingest, receipt_fields("undelivered", message="o", error_code=30003)) == 200
    delivered = receipt_fields("delivered", message="o", updated="2026-11-27T10:00:09Z")
    assert post(ingest, delivered) == 200
    assert replay(spill, stack.outputs["SpillQueueUrl"]).failed == []
    [item] = resources.items()
    assert item["status"] == {"S": "delivered"}
    assert "hist_undelivered" in item
    assert resources.queued() == []


def test_when_the_write_and_the_spill_both_fail_the_answer_is_500(
    stack: DeployedStack,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    environment = {
        **stack.environment("IngestFunction"),
        "SPILL_QUEUE_URL": stack.outputs["SpillQueueUrl"] + "-gone",
    }
    broken = load_function("ingest", environment, monkeypatch)
    throttle(broken, monkeypatch)
    assert post(broken, receipt_fields("sent")) == 500
    emitted = metric_names(capsys.readouterr().out)
    assert "IngestFaults" in emitted
    assert "SpilledReceipts" not in emitted


def test_a_spilled_receipt_that_cannot_be_replayed_goes_back_to_the_queue(
    spill: ModuleType, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    url = stack.outputs["SpillQueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"v": 1, "event": {}}))
    batch = replay(spill, url)
    assert batch.received == 1
    assert len(batch.failed) == 1  # after maxReceiveCount: SpillDLQ, alarmed
    redrive = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = json.loads(redrive["Attributes"]["RedrivePolicy"])
    assert policy["deadLetterTargetArn"].endswith(stack.outputs["SpillDLQUrl"].rsplit("/", 1)[1])


def test_a_record_that_cannot_be_replayed_goes_back_alone_and_is_logged(
    ingest: ModuleType,
    spill: ModuleType,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
    *,
    capsys: pytest.CaptureFixture[str],
    worker_log: WorkerLog,
) -> None:
    """The partial-batch contract (redeliver.adapters.sqs.batch): the bad record is reported failed,
    so SQS keeps it (and, after maxReceiveCount, SpillDLQ gets it); the good one in the same batch
    is recorded and deleted."""
    spill_url = resources.stack.outputs["SpillQueueUrl"]
    with monkeypatch.context() as patch:
        throttle(ingest, patch)
        assert post(ingest, receipt_fields("delivered", message="good")) == 200
    bad = boto3.client("sqs").send_message(QueueUrl=spill_url, MessageBody="{not json")
    capsys.readouterr()
    batch = replay(spill, spill_url)
    assert batch.received == 2
    assert batch.failed == [bad["MessageId"]]
    [item] = resources.items()
    assert item["status"] == {"S": "delivered"}
    printed = capsys.readouterr().out
    assert metric_names(printed).count("SpillReplayed") == 1
    [logged] = worker_log.lines("spilled receipt not replayed; it comes back")
    assert logged["sqs_message_id"] == bad["MessageId"]
    assert logged["exc_info"] is not None


# -- the invocation's deadline: endpoints that accept a connection and never answer -------------


class BlackHole:
    """A server on 127.0.0.1 that accepts every connection and never answers: an AWS endpoint
    hanging mid-outage, where each request costs its whole connect + read timeout."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed
                return
            self._held.append(connection)

    def close(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join()
        for connection in self._held:
            connection.close()


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    server = BlackHole()
    yield server
    server.close()


def hang(client: Any, url: str) -> Any:
    """The same client (service, config: redeliver.adapters.aws.WEBHOOK) at the black hole. mock_aws
    lets a request to an endpoint it does not serve go out for real."""
    return boto3.client(
        client.meta.service_model.service_name, endpoint_url=url, config=client.meta.config
    )


@pytest.mark.parametrize("spill_hangs", [True, False], ids=["spill-hangs", "spill-answers"])
def test_ingest_answers_before_its_timeout_when_dynamodb_hangs(
    ingest: ModuleType, resources: Resources, hole: BlackHole, spill_hangs: bool
) -> None:
    """IngestFunction's Timeout is 4 s. Two hanging writes, a pause of up to 1 s, then two hanging
    spill sends took 3.2 to 5.2 s (botocore's connect/read timeouts): Lambda stopped the function
    and the API answered 5xx, the receipt neither stored nor spilled. Each try is now started only
    while the invocation has time for it (a write try, only with time for a spill try after it),
    so the answer comes before the timeout: 200 spilled when SQS answers, else 500 (IngestFaults).
    The deadline is the context's, which runs down with the clock: no fixed sleep."""
    assert post(ingest, receipt_fields("sent")) == 200  # warm: the token is read
    ingest.ingest.recorder._receipts._db = hang(ingest.ingest.recorder._receipts._db, hole.url)
    if spill_hangs:
        ingest.ingest._spill._sqs = hang(ingest.ingest._spill._sqs, hole.url)
    context = FakeContext.for_timeout(3.0)  # of the 4 s, one spent already (a secret read)
    fields = receipt_fields("delivered", updated="2026-11-27T10:00:03Z")
    answer = ingest.lambda_handler(http_api_event(fields, token=TEST_AUTH_TOKEN), context)
    assert context.get_remaining_time_in_millis() > 0, "Lambda would have stopped it"
    if spill_hangs:
        assert answer["statusCode"] == 500
    else:
        assert answer["statusCode"] == 200
        [spilled] = peek(resources.stack.outputs["SpillQueueUrl"])
        assert spilled["event"]["status"] == "delivered"


def test_a_hanging_secrets_manager_falls_back_to_the_last_token_before_the_timeout(
    ingest: ModuleType, resources: Resources, hole: BlackHole
) -> None:
    """The cached token expires while Secrets Manager hangs: the read must give up in time for
    the last good token to verify the webhook and its write to answer, inside the 4 s."""
    from aws_lambda_powertools.utilities import parameters

    assert post(ingest, receipt_fields("sent")) == 200  # reads the token
    source = ingest.ingest._verifier._credentials
    provider = getattr(source, "_provider", None)
    if provider is None:  # the Powertools default provider's client
        provider = parameters.base.DEFAULT_PROVIDERS["secrets"]
    provider.client = hang(provider.client, hole.url)
    provider.clear_cache()  # the cached token has expired (max_age)
    context = FakeContext.for_timeout(4.0)
    fields = receipt_fields("delivered", updated="2026-11-27T10:00:03Z")
    answer = ingest.lambda_handler(http_api_event(fields, token=TEST_AUTH_TOKEN), context)
    assert context.get_remaining_time_in_millis() > 0, "Lambda would have stopped it"
    assert answer["statusCode"] == 200
    assert {i["status"]["S"] for i in resources.items()} == {"delivered"}
