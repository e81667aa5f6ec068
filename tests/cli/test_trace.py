"""`redeliver trace`: a chain's events in the domain's order, and how each attempt went out."""

from __future__ import annotations

import pytest

from redeliver_cli import main as cli
from tests.integration.retry_system import RetrySystem
from tests.integration.test_retry_v2 import POLICY, sms_conversations
from tools.samples import sid
from tools.stack import DeployedStack


def trace(capsys: pytest.CaptureFixture[str], stack: DeployedStack, sid: str) -> list[str]:
    capsys.readouterr()  # the handlers' own output
    assert cli.main(["--stack", stack.name, "trace", sid]) == 0
    return [line.split("  ", 2)[2] for line in capsys.readouterr().out.splitlines()[1:]]


def test_each_attempt_says_how_it_went_out_and_one_seconds_receipts_go_by_rank(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same content, then a Content template (63016), then SMS (63024, a WhatsApp recipient);
    the last message's sent, delivered and read arrive dated the same second."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp")
    system.fail(conversation, original, 30003)
    system.drain()
    [first] = system.created(conversation)
    system.fail(conversation, first["sid"], 63016, status="failed", after=70)
    system.advance(10)  # the worker's clock past that failure
    system.drain()
    second = system.created(conversation)[1]
    system.fail(conversation, second["sid"], 63024, status="failed", after=80)
    system.advance(10)
    system.drain()
    [sms] = sms_conversations(system.sim)
    [third] = system.created(sms)
    for status in ("read", "sent", "delivered"):  # arrival order does not matter
        assert system.webhook(sms, third["sid"], status, after=90) == 200

    lines = trace(capsys, stack, third["sid"])
    attempts = [line for line in lines if line.startswith("attempt")]
    assert attempts == [
        f"attempt 1: sent {first['sid']} (retrying {original}), "
        "the same content in the same conversation",
        f"attempt 2: sent {second['sid']} (retrying {first['sid']}), "
        "as a Content template in the same conversation",
        f"attempt 3: sent {third['sid']} (retrying {second['sid']}), "
        f"as SMS (the WhatsApp fallback) in conversation {sms}",
    ]
    receipt = sid("DY", f"{third['sid']}-r1")  # the webhooks' (RetrySystem.webhook)
    last = [line for line in lines if f"receipt {receipt[:10]}…" in line]
    assert [line.rsplit(": ", 1)[1] for line in last] == ["sent", "delivered", "read"]


def test_a_failure_and_a_delivery_of_one_second_go_by_the_domains_rank(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """SMS statuses are tentative: an undelivered and a delivered dated the same second are
    ordered as the domain ranks them (undelivered < delivered), the delivery last."""
    conversation, original = system.message()
    assert system.webhook(conversation, original, "delivered", after=5) == 200
    assert system.webhook(conversation, original, "sent", after=5) == 200
    assert system.webhook(conversation, original, "undelivered", 30003, after=5) == 200
    statuses = [line.rsplit(": ", 1)[1] for line in trace(capsys, stack, original)]
    assert statuses == ["sent", "undelivered 30003", "delivered"]
