"""The retry protocol attacked at its claims and markers (DESIGN invariants 4, 5, 8, 9): a stale
claim resolved where its claimant sent and nowhere else, a marker trusted only when the table
agrees, an SMS fallback that never sends into a group, a suppression written only by the decision
that recorded its give-up. Each test failed before its fix."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from tests.integration.retry_system import T0, RetrySystem, after, before
from tests.lambdas import metric_names
from tools.twilio_sim.simulator import TwilioSimulator

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


# -- a stale claim is searched for where its claimant sent (invariant 8) ------------------------


def test_a_stale_sms_claim_in_a_long_sms_thread_is_resolved_not_left_to_the_dlq(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The worker claimed, found the SMS thread, and died before its create. The thread has 120
    messages, all older than the claim: the search that read back to the WhatsApp message (never
    in that thread) ran out of its limit every time, and the job went to the DLQ unsent."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    existing = sms_thread(system, sim, sim.service_of(conversation), old=120)
    system.fail(conversation, original, 63024, status="failed")
    crash_in(system, "create_message", before)
    system.advance(180)  # stale
    system.redeliver_now()
    system.drain()
    [sent] = system.created()
    assert sent["conversation_sid"] == existing
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", sent["sid"])
    assert system.queued(system.dlq_url) == []


def test_a_stale_sms_claim_is_found_where_it_sent_after_a_policy_redeploy(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The claimant sent the SMS from SMS_FROM and died before recording it; the policy was then
    redeployed with another `from`. Searching where today's policy would send found nothing, and
    a second SMS went out."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    crash_in(system, "create_message")
    [first] = system.created()
    redeployed = json.loads(json.dumps(POLICY))
    redeployed["rules"][0]["from"] = OTHER_FROM
    system.load_retry(redeployed)
    system.advance(180)
    system.redeliver_now()
    system.drain()
    assert system.created() == [first]
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", first["sid"])
    assert attempt["new_conversation_sid"] == first["conversation_sid"]


def test_the_claim_records_the_intent_before_any_create_and_never_a_phone_number(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    crash_in(system, "create_conversation", before)
    intent = system.attempts(original)[1]
    assert intent["way"] == "fallback_sms"
    assert intent["service_sid"] == sim.service_of(conversation)
    assert intent["unique_name"] == f"redeliver-sms-{original}-1-{SMS_FROM[1:]}"
    assert intent["sender"] == SMS_FROM
    assert intent["recipient_hash"]
    assert "conversation_sid" not in intent  # not known yet: no message can have been created
    assert NEW_YORK.removeprefix("+") not in json.dumps(intent)
    # a plain retry names its conversation in the claim itself
    other, message = system.message()
    system.fail(other, message, 30003)
    system.advance(60)
    crash_in(system, "create_message", before)
    plain = system.attempts(message)[1]
    assert (plain["way"], plain["conversation_sid"]) == ("retry", other)


def test_a_give_up_that_meets_a_stale_sms_claim_searches_where_the_claimant_sent(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The claimant (63024, an SMS fallback) sent and died before recording; then the receipt
    failed again with a permanent code. The give-up resolved the stale claim with the rule for
    its own code (a plain retry: the WhatsApp conversation), found nothing, took the claim over
    and recorded the attempt given up: an SMS went out, unrecorded."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    crash_in(system, "create_message")
    [sms] = system.created()
    system.fail(conversation, original, 30007, after=20, status="failed")
    system.advance(180)
    system.drain()
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", sms["sid"])
    assert system.created() == [sms]


@pytest.mark.parametrize(
    ("where", "step"),
    [
        ("store", "claim"),  # the intent names no conversation yet
        ("gateway", "conversation_with"),
        ("store", "claim_conversation"),  # named, nothing created there
        ("gateway", "create_message"),  # named, and the message is there
    ],
)
def test_an_sms_fallback_is_exactly_once_when_the_worker_dies_around_its_intent(
    system: RetrySystem, sim: TwilioSimulator, where: str, step: str
) -> None:
    """A crash after each step that the claim's intent follows: once the claim is stale, one
    conversation and one message, recorded sent."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    worker = system.retry.worker
    target = worker._attempts if where == "store" else worker._twilio
    real = getattr(target, step)
    system.monkeypatch.setattr(target, step, after(real))
    assert system.poll(crash=True).crashed
    system.monkeypatch.setattr(target, step, real)
    system.advance(180)
    system.redeliver_now()
    system.drain()
    [sent] = system.created()
    assert len([c for c in sim.conversations.values() if c.unique_name]) == 1
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", sent["sid"])
    assert attempt["new_conversation_sid"] == sent["conversation_sid"]


def test_a_claim_from_before_intents_still_resolves_by_todays_policy(
    system: RetrySystem,
) -> None:
    """A claim written by the previous version names no way nor conversation: it is searched for
    as it was then (the failed conversation, back to the failed message)."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.advance(60)
    crash_in(system, "create_message")
    [sent] = system.created()
    system.dynamodb.update_item(
        TableName=system.table,
        Key={"pk": {"S": f"MSG#{original}"}, "sk": {"S": "ATTEMPT#001"}},
        UpdateExpression="REMOVE way, service_sid, conversation_sid",
    )
    system.advance(180)
    system.redeliver_now()
    system.drain()
    assert system.created() == [sent]
    assert system.attempts(original)[1]["new_message_sid"] == sent["sid"]


# -- a marker proves nothing on its own (invariant 9) -------------------------------------------


def test_a_message_with_a_retrys_attributes_copied_is_its_own_root(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The app sent a message with attributes copied from a retry. Its failure claimed the
    original's next attempt, so when the retry itself failed, the original was never resent."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.drain()
    [retry] = system.created(conversation)
    copied = json.loads(retry["attributes"])
    copy = sim.add_message(conversation, "Your order shipped", attributes=copied)
    system.fail(conversation, copy, 30003)
    system.fail(conversation, retry["sid"], 30003, after=10)
    system.advance(900)
    system.drain()
    assert system.attempts(copy)[1]["state"] == "sent"
    attempt = system.attempts(original)[2]
    assert (attempt["state"], attempt["failed_message_sid"]) == ("sent", retry["sid"])
    [again] = [m for m in system.created(conversation) if m["sid"] == attempt["new_message_sid"]]
    assert again["body"] == "Your code is 123456"


@pytest.mark.parametrize("attempt", [0, -10, "1", True, 1.5, None])
def test_a_marker_with_a_bad_attempt_is_an_ordinary_message(
    system: RetrySystem, sim: TwilioSimulator, attempt: object
) -> None:
    """attempt 0 claimed the named root's attempt 1 (one message too many); -10 raised
    IndexError on every receive until the DLQ."""
    conversation, root = system.message()
    odd = sim.add_message(
        conversation, attributes={"redeliver": {"root": root, "retry_of": root, "attempt": attempt}}
    )
    system.fail(conversation, odd, 30003)
    system.drain()
    assert system.attempts(root) == {}
    assert system.attempts(odd)[1]["state"] == "sent"
    assert system.queued(system.dlq_url) == []


# -- an SMS fallback never sends into a group (invariant 5) --------------------------------------


def test_an_sms_fallback_into_a_group_conversation_gives_up_with_its_own_reason(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pair (recipient, SMS_FROM) sits in a conversation with another SMS participant: that
    one would have received the original's content (a one-time code). Twilio allows the pair in
    that conversation only (50416), so nowhere else can the SMS go."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    service = sim.service_of(conversation)
    group = sms_thread(system, sim, service)
    assert system.retry.worker._twilio.add_sms_participant(service, group, "+14155550100", SMS_FROM)
    system.fail(conversation, original, 63024, status="failed")
    capsys.readouterr()
    system.drain()
    assert system.created() == []
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["reason"]) == ("gave_up", "sms_group_conversation")
    assert "RetryGaveUp" in metric_names(capsys.readouterr().out)


def test_an_sms_fallback_that_dies_after_finding_a_group_gives_up_once_stale(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """Its claim names no conversation (the group was found, nothing noted nor created): the
    next worker takes it over, finds the same group, and gives up under its own claim."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    service = sim.service_of(conversation)
    group = sms_thread(system, sim, service)
    assert system.retry.worker._twilio.add_sms_participant(service, group, "+14155550100", SMS_FROM)
    system.fail(conversation, original, 63024, status="failed")
    crash_in(system, "recipients")
    assert system.attempts(original)[1]["state"] == "claimed"
    system.advance(180)
    system.redeliver_now()
    system.drain()
    assert system.created() == []
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["reason"]) == ("gave_up", "sms_group_conversation")


def test_an_sms_fallback_into_a_group_is_sent_when_the_policy_allows_groups(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    system.load_retry({**POLICY, "group_conversations": "allow"})
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    service = sim.service_of(conversation)
    group = sms_thread(system, sim, service)
    assert system.retry.worker._twilio.add_sms_participant(service, group, "+14155550100", SMS_FROM)
    system.fail(conversation, original, 63024, status="failed")
    system.drain()
    [sent] = system.created()
    assert sent["conversation_sid"] == group


# -- a duplicate job does not undo `suppressions remove` ----------------------------------------


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


def test_a_suppression_that_meets_a_dead_workers_claim_is_written_under_the_claim_taken_over(
    system: RetrySystem,
) -> None:
    """A worker claimed attempt 1 (30003) and died before its create; then the receipt failed
    again with 21610. Once the claim is stale and its conversation holds no marker, the give-up
    takes it over and records itself and the suppression in one transaction, under that claim."""
    system.load_retry(POLICY)
    conversation, original = system.message(address=NEW_YORK)
    system.fail(conversation, original, 30003)
    system.advance(60)
    crash_in(system, "create_message", before)
    system.fail(conversation, original, 21610, after=20, status="failed")
    system.advance(180)
    system.drain()
    assert system.created() == []
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["reason"]) == ("gave_up", "suppressed")
    assert int(attempt["claimed_at"]) == int(system.now.timestamp())  # the claim taken over
    assert system.retry.worker._suppressions.get(NEW_YORK, int(system.now.timestamp()))


@pytest.mark.parametrize("step", ["create_conversation", "add_sms_participant"])
def test_a_stale_sms_claim_taken_over_after_a_redeploy_never_adds_a_second_sender(
    system: RetrySystem, sim: TwilioSimulator, step: str
) -> None:
    """The claimant built the attempt's SMS conversation (and maybe added the recipient through
    SMS_FROM), then died before any message. The policy was redeployed with another `from`; the
    worker that takes the stale claim over sends from the new number. Reusing the claimant's
    conversation name, it added the recipient a second time, through the new number: one
    message, delivered twice to the same phone from two numbers (and counted a group)."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    crash_in(system, step)
    redeployed = json.loads(json.dumps(POLICY))
    redeployed["rules"][0]["from"] = OTHER_FROM
    system.load_retry(redeployed)
    system.advance(180)
    system.redeliver_now()
    system.drain()
    [sent] = system.created()
    chat = sim.conversations[sent["conversation_sid"]]
    bindings = [p["messaging_binding"] for p in chat.participants if p["messaging_binding"]]
    assert [(b["address"], b["proxy_address"]) for b in bindings] == [(NEW_YORK, OTHER_FROM)]
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", sent["sid"])
