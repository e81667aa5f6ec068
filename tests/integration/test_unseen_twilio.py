"""Where real Twilio differs from what the simulator usually shows, met by the retry protocol."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tests.integration.retry_system import T0, Crash, RetrySystem
from tools.twilio_sim.faults import Fault
from tools.twilio_sim.simulator import TwilioSimulator


def markers(sim: TwilioSimulator, conversation: str) -> list[dict[str, Any]]:
    found = []
    for message in sim.messages(conversation):
        own = json.loads(message["attributes"] or "{}").get("redeliver")
        if isinstance(own, dict) and "attempt" in own:
            found.append(own)
    return found


def test_a_backdated_message_after_the_retry_does_not_hide_it_from_the_take_over(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """A worker creates attempt 1 and dies before recording it. Before its claim is stale,
    another client of the conversation posts a message with a `DateCreated` in the past (an
    import, a mirror of another channel): Twilio's Messages create takes `DateCreated`
    (/work/shared/oai/twilio_conversations_v1.json, POST
    /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages, requestBody property
    `DateCreated`: "The date that this resource was created."), and the list's `Order` sorts by
    the message's place in the conversation (its `index`), not by that date. The take-over's
    search (ConversationsGateway.find_retry) reads newest first and stops at the first message
    older than the claim (`_older(message.date_created, since)`): the imported message, the newest,
    ends the search before it reaches the retry, which is then sent a second time.

    (The simulator's REST create ignores `DateCreated`; `add_message(created=...)` stores what
    Twilio would for such a create.)"""
    conversation, original = system.message()
    system.fail(conversation, original)
    system.advance(120)  # the first attempt is due
    gateway = system.retry.worker._twilio
    real = gateway.create_message

    def dying(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Crash

    system.monkeypatch.setattr(gateway, "create_message", dying)
    assert system.poll(crash=True).crashed
    system.monkeypatch.setattr(gateway, "create_message", real)
    assert len(markers(sim, conversation)) == 1  # attempt 1 went out, unrecorded

    sim.add_message(conversation, "imported history", created=T0 - timedelta(days=2))
    system.advance(600)  # the claim is stale
    system.redeliver_now()
    system.drain()
    assert len(markers(sim, conversation)) == 1, "attempt 1 sent twice"


def test_a_create_refused_for_our_credentials_is_retried_not_given_up(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """Twilio answers 403 when "the request used a Restricted API key that does not include
    permission for the resource or endpoint" and when "the Auth Token was rotated recently ...
    until the updated token finishes propagating" (https://www.twilio.com/docs/api/errors/403),
    and 20003 "Permission Denied" for a deleted key or one of another Twilio Region
    (https://www.twilio.com/docs/api/errors/20003). Neither says anything about the message:
    `TwilioError.refused` (layers/common/redeliver/adapters/twilio/conversations.py) names exactly
    these, and the reconciler does not count them against a receipt. The retry worker sorts them
    `permanent` (`ConversationsGateway._raise`: "any other 4xx") and records a give-up
    (`twilio_rejected_20003`): every failure met while a key lacks a permission, or while a
    rotation propagates, was never retried, and fixing the key brought none of them back. Now
    `transient`: the claim is released and the job comes back (the DLQ, alarmed, if it lasts)."""
    conversation, original = system.message()
    system.fail(conversation, original)
    system.advance(120)  # the first attempt is due
    sim.fail_next("POST", Fault(status=403, code=20003))
    system.poll()
    system.redeliver_now()
    system.advance(600)
    system.drain()
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt.get("reason")) == ("sent", None)
    assert len(system.created(conversation)) == 1
