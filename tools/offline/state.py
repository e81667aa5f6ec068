"""What the running stack holds now, read from moto and the simulator: the retry queue's depth, the
DLQ's bodies, failures waiting for the sweeper, receipts at `sent`, and Twilio's truth (its
Receipts) beside the webhooks that never reached ingest."""

from __future__ import annotations

from typing import Any

import boto3

from redeliver.adapters.dynamodb.table import PENDING_INDEX, STUCK_INDEX
from tools.offline.stack import Offline
from tools.webhook_emitter import WebhookEmitter


def queue_depth(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {name: int(value) for name, value in attributes.items()}


def pending_failures(offline: Offline) -> list[dict[str, Any]]:
    """Failures still carrying the outbox mark: stored, not yet taken by the worker."""
    dynamodb = boto3.client("dynamodb")
    table = offline.stack.outputs["ReceiptsTableName"]
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, IndexName=PENDING_INDEX)
    return [item for page in pages for item in page["Items"]]


def reconciling(offline: Offline) -> bool:
    return offline.reconciler is not None and not offline.reconciler.stopped


def stuck_receipts(offline: Offline) -> list[dict[str, Any]]:
    """Receipts whose latest status is `sent` (the reconciler's index): each is looked up once
    it is older than the threshold, and leaves the index when Twilio reports it further."""
    dynamodb = boto3.client("dynamodb")
    table = offline.stack.outputs["ReceiptsTableName"]
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, IndexName=STUCK_INDEX)
    return [item for page in pages for item in page["Items"]]


def dead_letters(offline: Offline) -> list[str]:
    """The bodies in the DLQ, looked at without taking them (visibility 0)."""
    sqs = boto3.client("sqs")
    url = offline.stack.outputs["RetryDLQUrl"]
    depth = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    bodies: dict[str, str] = {}
    for _ in range(depth // 10 + 3):
        if len(bodies) >= depth:
            break
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies.update({m["MessageId"]: m["Body"] for m in answer.get("Messages", [])})
    return list(bodies.values()) + [""] * max(0, depth - len(bodies))


Receipt = tuple[str, str]  # (message SID, receipt SID)


def twilio_truth(offline: Offline) -> dict[Receipt, dict[str, Any]]:
    """Every receipt as Twilio's Receipts API reports it now (the simulator's)."""
    return {
        (message, receipt["sid"]): dict(receipt)
        for message, receipts in list(offline.sim.receipts.items())
        for receipt in list(receipts)
    }


def lost_statuses(emitter: WebhookEmitter) -> set[tuple[str, str, str]]:
    """(message, receipt, status) of every genuine webhook that never reached ingest: lost on the
    way, answered 5xx, or not answered."""
    webhooks = [*emitter.dropped, *emitter.lost]
    return {(f["MessageSid"], f["DeliveryReceiptSid"], f["Status"]) for f in webhooks}
