"""The retry protocol attacked at its claims and markers (DESIGN invariants 4, 5, 8, 9): a stale
claim resolved where its claimant sent and nowhere else, a marker trusted only when the table
agrees, an SMS fallback that never sends into a group, a suppression written only by the decision
that recorded its give-up. Each test failed before its fix."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from redeliver.policy import DEFAULT_POLICY_DOCUMENT
from tests.integration.retry_system import T0, Crash, RetrySystem
from tools.twilio_sim import TwilioSimulator

SMS_FROM = "+15550100000"
OTHER_FROM = "+15550100001"
NEW_YORK = "+12125550100"
POLICY = {
    **DEFAULT_POLICY_DOCUMENT,
    "rules": [
        {"codes": [63024], "action": "fallback_sms", "from": SMS_FROM},
        {"codes": [21610], "action": "suppress"},
        {"codes": [30007], "action": "give_up"},
        {"codes": [30003], "action": "retry", "delays": [60, 900, 3600]},
        {"codes": "*", "action": "retry", "delays": [300]},
    ],
}


def marker(message: dict[str, Any]) -> dict[str, Any]:
    own: dict[str, Any] = json.loads(message["attributes"])["redeliver"]
    return own


def after(original: Any) -> Any:
    """Run the step, then die: its effect happened, nothing after it did."""

    def dying(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise Crash

    return dying


def before(_: Any) -> Any:
    """Die instead of the step: nothing of it happened."""

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    return dying


def crash_in(system: RetrySystem, step: str, how: Any = after) -> None:
    """One poll whose worker dies at `step` of the gateway."""
    gateway = system.retry.worker._twilio
    real = getattr(gateway, step)
    system.monkeypatch.setattr(gateway, step, how(real))
    assert system.poll(crash=True).crashed
    system.monkeypatch.setattr(gateway, step, real)


def sms_thread(system: RetrySystem, sim: TwilioSimulator, service: str, old: int = 0) -> str:
    """An SMS conversation where the recipient already talks to SMS_FROM, `old` messages long
    (all of them from before any claim)."""
    existing = sim.add_conversation(recipients=0, service=service)
    assert system.retry.worker._twilio.add_sms_participant(service, existing, NEW_YORK, SMS_FROM)
    for n in range(old):
        sim.add_message(existing, f"old {n}", created=T0 - timedelta(days=1, seconds=-n))
    return existing


# -- item 11: a duplicate job does not undo `suppressions remove` -------------------------------


def test_a_duplicate_of_a_decided_suppress_job_does_not_suppress_again(
    system: RetrySystem,
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(address=NEW_YORK)
    system.fail(conversation, original, 21610, status="failed")
    [job] = system.queued()
    system.drain()
    assert system.attempts(original)[1]["reason"] == "suppressed"
    suppressions = system.retry.worker._suppressions
    now = int(system.now.timestamp())
    assert suppressions.get(NEW_YORK, now) is not None
    assert suppressions.remove(NEW_YORK)  # an operator's decision
    system.sqs.send_message(QueueUrl=system.queue_url, MessageBody=json.dumps(job))
    system.drain()
    assert suppressions.get(NEW_YORK, now) is None


def test_a_suppression_and_its_give_up_are_written_together(system: RetrySystem) -> None:
    """A crash can not leave the give-up recorded and the recipient unsuppressed (a duplicate
    no longer writes it), nor suppressed with the attempt undecided."""
    system.load_retry(POLICY)
    conversation, original = system.message(address=NEW_YORK)
    system.fail(conversation, original, 21610, status="failed")
    calls = system.count_aws()
    system.drain()
    assert system.attempts(original)[1]["reason"] == "suppressed"
    assert "PutItem" not in calls  # one transaction, not two writes
    assert system.retry.worker._suppressions.get(NEW_YORK, int(system.now.timestamp()))
