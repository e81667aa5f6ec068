"""What a test reads back from a deployed stack: its table and queues."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tools.stack import DeployedStack


class Resources:
    """Read what a handler left in the stack's table and queues."""

    def __init__(self, stack: DeployedStack) -> None:
        self.stack = stack
        self.dynamodb = boto3.client("dynamodb")
        self.sqs = boto3.client("sqs")
        self.table = stack.outputs["ReceiptsTableName"]
        self.queue_url = stack.outputs["RetryQueueUrl"]
        self.dlq_url = stack.outputs["RetryDLQUrl"]

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table, ConsistentRead=True)["Items"]

    def queued(self, url: str | None = None) -> list[dict[str, Any]]:
        """Every message on the queue (received once, then made visible again)."""
        url = url or self.queue_url
        bodies = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            bodies.extend(json.loads(m["Body"]) for m in messages)
        return bodies


class AnswerLost:
    """A DynamoDB client whose first UpdateItem is applied but its answer lost (a read timeout,
    a connection reset, a 500 after the write): botocore's standard retry mode sends the same
    request again, and the application sees only that second answer. moto never loses an answer;
    this replays what botocore does on AWS when one is."""

    def __init__(self, client: object) -> None:
        self._client = client
        self.lost = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    def update_item(self, **request: object) -> object:
        if not self.lost:
            self.lost += 1
            self._client.update_item(**request)  # type: ignore[attr-defined]
        return self._client.update_item(**request)  # type: ignore[attr-defined]
