"""The Lambda SQS event source emulation (tools.sqs_poller) against moto: partial batch
responses, whole-batch failures, and redrive into the DLQ after maxReceiveCount."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tools.sqs_poller import poll_once


@pytest.fixture
def queues(aws: None) -> tuple[Any, str, str]:
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="q",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    return sqs, queue, dlq


def test_only_the_reported_failures_stay_on_the_queue(queues: tuple[Any, str, str]) -> None:
    sqs, queue, _ = queues
    for n in range(4):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": n}))
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        seen.extend(event["Records"])
        failures = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["n"] % 2]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}

    batch = poll_once(sqs, queue, handler, batch_size=10)
    assert batch.received == 4
    assert len(batch.failed) == 2
    record = seen[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":q")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    for handle in batch.handles.values():
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0)
    left = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["n"] for m in left) == [1, 3]


def test_a_raising_handler_leaves_the_whole_batch(queues: tuple[Any, str, str]) -> None:
    sqs, queue, _ = queues
    sqs.send_message(QueueUrl=queue, MessageBody="{}")

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    batch = poll_once(sqs, queue, handler)
    assert batch.failed
    assert batch.error == "RuntimeError: boom"
    assert not batch.crashed


def test_without_report_batch_item_failures_one_failure_fails_the_batch(
    queues: tuple[Any, str, str],
) -> None:
    sqs, queue, _ = queues
    for n in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=str(n))

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        first = event["Records"][0]["messageId"]
        return {"batchItemFailures": [{"itemIdentifier": first}]}

    batch = poll_once(sqs, queue, handler, report_batch_item_failures=False)
    assert len(batch.failed) == 3


def test_a_record_failing_every_time_moves_to_the_dlq(queues: tuple[Any, str, str]) -> None:
    sqs, queue, dlq = queues
    sqs.send_message(QueueUrl=queue, MessageBody="poison")

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    for _ in range(2):  # maxReceiveCount
        batch = poll_once(sqs, queue, handler)
        assert batch.received == 1
        for handle in batch.handles.values():
            sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0)
    # moto moves it on the next receive (AWS as the count is exceeded): it is never handled again
    assert poll_once(sqs, queue, handler).received == 0
    [dead] = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert dead["Body"] == "poison"


def test_a_visibility_the_handler_set_on_a_failed_record_holds(
    queues: tuple[Any, str, str],
) -> None:
    """A failed record back when its reason says, as Lambda's poller honours it: the handler
    sets a failed record's visibility (ChangeMessageVisibility, with the record's own receipt
    handle) and reports it failed; the poller leaves it so, and the record is back long before
    the queue's 30 s."""
    sqs, queue, _ = queues
    sqs.send_message(QueueUrl=queue, MessageBody="soon")
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        for record in event["Records"]:
            sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    first = poll_once(sqs, queue, handler, queue_arn=arn)
    assert first.received == 1
    assert first.failed
    again = poll_once(sqs, queue, handler, queue_arn=arn)  # at once: not after 30 s
    assert again.received == 1
    assert again.failed == first.failed


def test_a_failed_record_left_alone_waits_the_queues_visibility_timeout(
    queues: tuple[Any, str, str],
) -> None:
    sqs, queue, _ = queues
    sqs.send_message(QueueUrl=queue, MessageBody="later")

    def handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    assert poll_once(sqs, queue, handler).received == 1
    assert poll_once(sqs, queue, handler).received == 0
