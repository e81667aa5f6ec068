"""Adversarial review (adv-logic): each test shows one way the retry path doubles, loses or
leaks. A test marked xfail(strict) fails on the code as it is; its reason says what it shows."""

from __future__ import annotations

import json

from tests.integration.retry_system import T0, RetrySystem, after
from tools.twilio_sim.simulator import TwilioSimulator


def _remove_first_participant(sim: TwilioSimulator, conversation: str) -> None:
    """`DELETE .../Participants/{first}`: the failed receipt's recipient leaves."""
    with sim._lock:
        sim.conversations[conversation].participants.pop(0)


def test_a_retry_is_not_sent_when_the_failed_recipient_left_a_group(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """group_conversations "skip" (the default). The original went to two recipients: the
    first's receipt failed, the second's was delivered. The first leaves the conversation before
    the worker takes the job (the app drops a participant whose channel fails; or the job waited
    its delay). The group check then counts one member: the worker resent (before this test),
    the second recipient got the same message twice, and the failed one never got it. Now the
    attempt is given up as `recipient_left`."""
    conversation, original = system.message(recipients=2)
    system.fail(conversation, original, 30003)
    _remove_first_participant(sim, conversation)
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[1]["reason"] == "recipient_left"


def test_a_retry_is_not_sent_when_the_failed_recipient_was_replaced(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """A one-to-one conversation: its recipient's delivery failed, it was removed and someone
    else was added before the retry. The group check counts one member (the newcomer), the
    recipient's address is unknown (removed), and the worker sent (before this test): the
    newcomer received the previous recipient's message (a one-time code, say)."""
    conversation, original = system.message(recipients=1)
    system.fail(conversation, original, 30003)
    sim.add_participant(conversation, "+15559990002")
    _remove_first_participant(sim, conversation)
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[1]["reason"] == "recipient_left"


def test_a_one_to_one_conversation_between_two_phones_is_not_a_group(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """A masked-number conversation: two SMS participants, one writing to the other (the
    message's author is the writer's address; Twilio does not deliver a message to its author).
    The reader's delivery failed. A new message, authored the same, reaches the reader alone:
    it is no group, and the failure is retried (before the group check counted members, the
    original's `delivery.total` of 1 said so; counting every member with an address, the author
    included, gave it up as `group_conversation`)."""
    conversation = sim.add_conversation(recipients=2)
    writer = sim.conversations[conversation].participants[1]["messaging_binding"]["address"]
    original = sim.add_message(conversation, author=writer, created=T0)
    system.fail(conversation, original, 30003)
    system.drain()
    [retry] = system.created(conversation)
    assert retry["author"] == writer


def test_the_stale_claim_search_does_not_record_a_copy_of_the_retry(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The worker created attempt 1 and died before recording it. The app then copied that
    retry, attributes and all, into a message of its own in the conversation (a "send again"
    button, a bot that forwards what it reads): a marker that proves nothing (invariant 9). The
    stale-claim search reads newest first and takes the first marker it meets, the copy: the
    attempt is recorded as the app's message, the real retry is left unlinked, and when it fails
    its marker is not trusted (the table names the copy), so it is retried as a root of its own:
    the original's content went out again past max_attempts 1 (before this test; the search
    now takes the oldest marker back to the claim)."""
    policy = {"max_attempts": 1, "rules": [{"codes": "*", "action": "retry", "delays": [60]}]}
    system.load_retry(policy)
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.advance(60)
    gateway = system.retry.worker._twilio
    create = gateway.create_message
    system.monkeypatch.setattr(gateway, "create_message", after(create))
    assert system.poll(crash=True).crashed  # created, then died before recording
    system.monkeypatch.setattr(gateway, "create_message", create)
    [retry] = system.created(conversation)
    sim.add_message(conversation, retry["body"], attributes=json.loads(retry["attributes"]))
    system.advance(system.retry.settings.claim_stale_seconds + 1)
    system.redeliver_now()
    system.drain()
    attempt = system.attempts(original)[1]
    system.fail(conversation, retry["sid"], 30003)  # the real retry fails too
    system.advance(3600)
    system.drain()
    assert attempt["new_message_sid"] == retry["sid"]
    assert len(system.created(conversation)) == 1  # max_attempts 1: no resend of the retry
