"""Adversarial review of outcome events (issue 19), our logic: where a decision's event is lost.

Same harness as test_outcome_events.py: the template deployed into moto with EventBusName set,
the real handlers, tools/pipes.py standing in for OutcomeEventsPipe.
"""

from __future__ import annotations

import json
from datetime import timedelta

from tests.integration import test_outcome_events as base
from tests.integration.retry_system import T0, RetrySystem, after
from tests.integration.test_outcome_events import of_type
from tools.pipes import OutcomeEventsPipe
from tools.twilio_sim.simulator import TwilioSimulator

stack = base.stack  # the template deployed with EventBusName set
pipe = base.pipe  # tools/pipes.py over the table's stream


def statuses(system: RetrySystem, message: str) -> set[str]:
    """The statuses of a message's receipts, as our table holds them."""
    items = system.dynamodb.query(
        TableName=system.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
        ExpressionAttributeValues={":pk": {"S": f"MSG#{message}"}, ":r": {"S": "RCPT#"}},
        ConsistentRead=True,
    )["Items"]
    return {i["status"]["S"] for i in items}


def test_a_recovery_seen_by_a_second_follow_up_is_published(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    """The worker dies after the retry is recorded and its follow-up queued; the record comes
    back, finds the attempt `sent` and queues the follow-up again (Claims.resume). The first copy
    runs while the retry is still `sent`: RetryUnconfirmed, and it sets `followed_up_at`. The
    retry is then delivered, and the second copy sees it: RetryRecovered. Its event is written in
    one transaction with the `followed_up_at` mark, which the first copy took: the transaction is
    cancelled and the recovery Twilio reported is never published. Fixed: one look at a retry
    still `sent` is no verdict (it looks again later), and the event is put alone, before the
    mark, by whichever copy sees the recovery."""
    claims = system.retry.worker._claims
    real = claims.record_sent
    system.monkeypatch.setattr(claims, "record_sent", after(real))
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    assert system.poll(crash=True).crashed  # recorded, follow-up queued, then the runtime died
    system.monkeypatch.setattr(claims, "record_sent", real)
    [retry] = system.created(conversation)

    [follow_up] = system.queued()
    assert follow_up["kind"] == "follow_up"
    system.poll()  # the first follow-up: Twilio says `sent` only, so it looks again later
    assert "followed_up_at" not in system.attempts(original)[1]  # not judged on one look
    [again] = system.queued()
    assert (again["kind"], again["look"]) == ("follow_up", 2)

    sim.set_receipt(retry["sid"], "delivered")  # now: after the `sent` Twilio stored
    system.advance(60)
    system.redeliver_now()
    system.drain()  # the retry record again (a duplicate, follow-up queued again), then it
    assert len(system.created(conversation)) == 1
    assert statuses(system, retry["sid"]) == {"delivered"}  # the second copy saw the recovery

    events = pipe.pump()
    assert [e.detail_type for e in events].count("Retry Sent") == 1
    [recovered] = of_type(events, "Retry Recovered")
    assert recovered.detail["new_message_sid"] == retry["sid"]


def test_a_retry_delivered_after_its_follow_up_is_published(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    """DESIGN: `Retry Recovered` when a retry's receipt says delivered or read. Only the
    follow-up publishes it, once, at `follow_up_seconds`: a retry delivered later (a phone that
    was off, a carrier's queue) is recorded as delivered (webhook, reconciliation) and counted
    recovered by `redeliver stats`, but its event never comes. A consumer waiting for the
    outcome of a `Retry Sent` waits forever. Fixed: a retry still `sent` is looked at again,
    follow_up_seconds x 2, x 4, x 8 later (follow_up.LOOKS)."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll()  # the retry, and its follow-up
    [retry] = system.created(conversation)
    system.poll()  # the follow-up, due at once: still `sent`, so it looks again later
    [again] = system.queued()
    assert (again["kind"], again["look"]) == ("follow_up", 2)

    # An hour later the retry is delivered: Twilio says so, and its webhook arrives.
    sim.set_receipt(retry["sid"], "delivered")
    assert system.webhook(conversation, retry["sid"], "delivered", after=3600) == 200
    assert "delivered" in statuses(system, retry["sid"])
    system.advance(86_400)
    system.drain()

    events = pipe.pump()
    assert [e.detail_type for e in events] == ["Retry Sent", "Retry Recovered"]


def test_retry_recovered_names_the_account_as_retry_sent_does(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    """DESIGN: `detail` carries the account, service, conversation and message SIDs. The
    follow-up's FollowUp job has no account SID (nor error code), so every `Retry Recovered`
    says account_sid "" while its `Retry Sent` names the account: with several accounts
    (DESIGN, Accounts), a consumer cannot route a recovery to its account."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll()
    [retry] = system.created(conversation)
    sim.set_receipt(retry["sid"], "delivered", updated=T0 + timedelta(seconds=30))
    system.drain()
    events = pipe.pump()
    [sent] = of_type(events, "Retry Sent")
    [recovered] = of_type(events, "Retry Recovered")
    assert sent.detail["account_sid"].startswith("AC")
    assert json.dumps(recovered.detail["account_sid"]) == json.dumps(sent.detail["account_sid"])
