"""The real template deployed into moto, and the real handlers loaded with its environment."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from redeliver import observability
from redeliver.adapters.dynamodb.outbox import Outbox
from redeliver.adapters.dynamodb.receipts import Receipts
from tests.integration.resources import Resources
from tests.integration.retry_system import RetrySystem
from tests.lambdas import load_function
from tools.stack import DeployedStack, deploy
from tools.twilio_sim.simulator import TwilioSimulator, running


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def stack(aws: None) -> DeployedStack:
    return deploy(f"redeliver-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def receipts(resources: Resources) -> Receipts:
    return Receipts(resources.dynamodb, resources.table)


@pytest.fixture
def outbox(resources: Resources) -> Outbox:
    return Outbox(resources.dynamodb, resources.table)


@pytest.fixture
def ingest(stack: DeployedStack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_function("ingest", stack.environment("IngestFunction"), monkeypatch)


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


class WorkerLog(logging.Handler):
    """The handlers' log records, caught on their own Powertools logger at INFO. Not caplog: it
    sees only what propagates to the root, and the CLI, run in-process by its tests, quiets that
    logger to ERROR."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, message: str) -> list[dict[str, Any]]:
        return [vars(r) for r in self.records if r.getMessage() == message]


@pytest.fixture
def worker_log() -> Iterator[WorkerLog]:
    caught = WorkerLog()
    target = logging.getLogger(observability.logger.name)
    level = target.level
    target.setLevel(logging.INFO)
    target.addHandler(caught)
    yield caught
    target.removeHandler(caught)
    target.setLevel(level)
