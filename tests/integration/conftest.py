"""The real template deployed into moto, and the real handlers loaded with its environment."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.integration.retry_system import RetrySystem
from tests.lambdas import load_function
from tools.stack import DeployedStack, deploy
from tools.twilio_sim import TwilioSimulator, running


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def stack(aws: None) -> DeployedStack:
    return deploy(f"redeliver-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def ingest(stack: DeployedStack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_function("ingest", stack.environment("IngestFunction"), monkeypatch)


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


@pytest.fixture
def resources(stack: DeployedStack) -> Resources:
    return Resources(stack)


@pytest.fixture
def sim() -> Iterator[TwilioSimulator]:
    """The Twilio simulator on loopback, for the retry function's real twilio client."""
    with running() as simulator:
        yield simulator


@pytest.fixture
def system(
    stack: DeployedStack, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
) -> RetrySystem:
    return RetrySystem(stack, sim, monkeypatch)
