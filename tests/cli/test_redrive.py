"""`redeliver redrive`: where SQS has no message move task (moto), it says so and points to
--by-hand; SpillDLQ has its redrive too (--spill), and SpillFunction replays what comes back."""

from __future__ import annotations

import boto3
import pytest

from redeliver.adapters.sqs.spill import spilled_body
from redeliver.domain.receipts import parse_delivery_event
from redeliver_cli import main as cli
from redeliver_cli.stack import partition
from tests.integration.test_spill import peek, replay
from tests.lambdas import load_function
from tools.samples import receipt_fields
from tools.stack import DeployedStack


def run(capsys: pytest.CaptureFixture[str], stack: DeployedStack, *argv: str) -> tuple[int, str]:
    code = cli.main(["--stack", stack.name, *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_without_a_move_task_it_says_so_and_points_to_by_hand(
    stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto's in-process mock has no StartMessageMoveTask (its server answers 500 and an HTML
    page: tests/cli/test_offline_endpoint.py)."""
    boto3.client("sqs").send_message(QueueUrl=stack.outputs["RetryDLQUrl"], MessageBody="{}")
    code, out = run(capsys, stack, "redrive", "--yes")
    assert code == 1, out
    assert "RetryDLQ holds about 1 job(s)." in out
    assert "message move task is not available here" in out
    assert "Run again with --by-hand" in out
    assert "Traceback" not in out


def test_spilled_receipts_in_spilldlq_go_back_onto_spillqueue_and_are_replayed(
    stack: DeployedStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs = boto3.client("sqs")
    fields = receipt_fields("undelivered", message="spilled", error_code=30003)
    event = parse_delivery_event(fields)
    sqs.send_message(QueueUrl=stack.outputs["SpillDLQUrl"], MessageBody=spilled_body(event))
    code, out = run(capsys, stack, "redrive", "--spill")
    assert code == 0, out
    assert "SpillDLQ holds about 1 spilled receipt(s)." in out
    assert "--yes to move them back onto SpillQueue" in out
    assert peek(stack.outputs["SpillQueueUrl"]) == []

    code, out = run(capsys, stack, "redrive", "--spill", "--yes", "--by-hand")
    assert code == 0, out
    assert "Moved 1 spilled receipt(s) back onto SpillQueue" in out
    assert peek(stack.outputs["RetryDLQUrl"]) == peek(stack.outputs["RetryQueueUrl"]) == []
    spill = load_function("spill", stack.environment("SpillFunction"), monkeypatch)
    assert replay(spill, stack.outputs["SpillQueueUrl"]).failed == []
    [receipt] = partition(stack.outputs["ReceiptsTableName"], event.message_sid)
    assert (receipt["sk"], receipt["status"]) == (f"RCPT#{event.receipt_sid}", "undelivered")
    assert "about 0 spilled receipt(s)" in run(capsys, stack, "redrive", "--spill")[1]
