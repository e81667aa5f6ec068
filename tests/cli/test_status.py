"""`redeliver status`: queues, the outbox, claims held (and stale ones) and recent attempts."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from redeliver_cli import main as cli
from redeliver_cli.stack import Stack
from redeliver_cli.status import status
from tests.integration.retry_system import RetrySystem, after
from tools.stack import DeployedStack


def busy(system: RetrySystem) -> dict[str, str]:
    """A retry sent, a give-up, a claim its worker died holding, a failure not yet taken, a
    receipt at sent, two jobs in RetryDLQ and one spilled receipt in SpillDLQ."""
    conversation, sent = system.message()
    system.fail(conversation, sent, 30003)
    other, lost = system.message()
    system.fail(other, lost, 30007, status="failed")
    system.drain()  # attempt 1 of `sent` is sent; `lost` is given up
    third, held = system.message()
    system.fail(third, held, 30003)
    attempts = system.retry.worker._attempts
    real = attempts.claim
    system.monkeypatch.setattr(attempts, "claim", after(real))
    assert system.poll(crash=True).crashed  # claimed, then the worker died: in flight
    system.monkeypatch.setattr(attempts, "claim", real)
    fourth, waiting = system.message()
    system.fail(fourth, waiting, 30003)  # marked in the outbox, its job still queued
    fifth, at_sent = system.message()
    assert system.webhook(fifth, at_sent, "sent") == 200
    sqs = boto3.client("sqs")
    for n in range(2):
        sqs.send_message(QueueUrl=system.dlq_url, MessageBody=f'{{"n": {n}}}')
    sqs.send_message(QueueUrl=system.stack.outputs["SpillDLQUrl"], MessageBody="{}")
    return {"sent": sent, "lost": lost, "held": held, "waiting": waiting}


def test_status_shows_queues_outbox_claims_and_recent_attempts(
    system: RetrySystem, stack: DeployedStack
) -> None:
    roots = busy(system)
    found = Stack.find(stack.name)
    lines = status(found, recent=5, now=system.now + timedelta(seconds=10))
    out = "\n".join(lines)
    assert "    RetryQueue  1 / 1 / 0" in out  # `waiting`'s job; `held`'s, in flight
    assert "    RetryDLQ    2 / 0 / 0   `redeliver redrive`" in out
    assert "    SpillQueue  0 / 0 / 0" in out
    assert "    SpillDLQ    1 / 0 / 0   `redeliver redrive --spill`" in out
    # `waiting` (the worker took `held`'s mark when it claimed)
    assert "  outbox        1 failure(s) marked and not yet taken by the retry worker" in out
    assert "(RetryPendingByShard, Query)" in out
    # `at_sent`, and the retry's own `sent`, which its follow-up learned from Twilio
    assert "  at sent       2 receipt(s) the reconciler may ask Twilio about" in out
    claims = "  claims        1 held, 0 stale (at least 150 s old, the worker's stale-claim age"
    assert claims in out
    assert f"    {roots['held']} attempt 1: claimed 10 s ago, to send the same content" in out
    recent = lines[lines.index(next(x for x in lines if x.startswith("  recent"))) + 1 :]
    recent = [line for line in recent if line.startswith("    ")]
    assert len(recent) == 3
    assert any(f"{roots['sent']} attempt 1: sent IM" in line for line in recent)
    assert any(
        f"{roots['lost']} attempt 1: gave up, permanent_error (after {roots['lost']} failed "
        "with 30007)" in line
        for line in recent
    )
    assert any(
        f"{roots['held']} attempt 1: claimed, outcome not recorded" in line for line in recent
    )
    assert "a Scan of" in out
    assert "the whole table" in out

    later = "\n".join(status(found, now=system.now + timedelta(seconds=1_000)))
    assert "  claims        1 held, 1 stale" in later
    assert "claimed 1000 s ago (stale)" in later
    # The worker's edge (claims.py: stale once `now - claimed_at >= stale`): one second before it
    # the claim is still held by a live worker, at it the next delivery resolves it.
    before = "\n".join(status(found, now=system.now + timedelta(seconds=149)))
    assert "  claims        1 held, 0 stale" in before
    at = "\n".join(status(found, now=system.now + timedelta(seconds=150)))
    assert "  claims        1 held, 1 stale" in at


def test_the_scan_is_bounded_and_says_so(system: RetrySystem, stack: DeployedStack) -> None:
    busy(system)
    lines = status(Stack.find(stack.name), scan_pages=1, page_items=2, now=system.now)
    [scan] = [line for line in lines if line.startswith("  scan")]
    assert "bounded to at most 1 page(s) of 2 items: read 2 item(s) in 1 page(s)" in scan
    assert "stopped at the cap: claims and attempts beyond it are not counted" in scan


def test_status_from_the_command_line(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["--stack", stack.name, "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{stack.name} at ")
    assert "  claims        0 held, 0 stale" in out
