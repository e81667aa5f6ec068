"""The retry path attacked where production differs from the happy tests: a conversation busier
than the marker search looks, a storm where invocations run out of time. Each test failed before
its fix: exactly one new message per (root, attempt), no attempt recorded given up although its
message went out, and no healthy job in the DLQ."""

from __future__ import annotations

from typing import Any

import pytest

from redeliver.settings import ConfigurationError
from redeliver.usecases.retry.outcomes import record_budget_seconds
from tests.integration.retry_system import RetrySystem, after
from tools.lambdas import FakeContext
from tools.sqs_poller import poll_once
from tools.stack import load_template
from tools.twilio_sim.simulator import TwilioSimulator


def max_receive_count() -> int:
    return int(load_template()["Parameters"]["RetryMaxReceiveCount"]["Default"])


# -- the marker search must not conclude "not sent" from a partial look --------------------------


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.parametrize(
    ("later", "outcome"),
    [(360, "sent twice"), (2 * 86_400, "given up although sent")],
    ids=["within-max-age", "past-max-age"],
)
def test_a_stale_claim_in_a_busy_conversation_is_never_resolved_by_a_partial_search(
    system: RetrySystem, sim: TwilioSimulator, later: int, outcome: str
) -> None:
    """The worker created attempt 1 and died before recording it. Before its record comes back
    (the stale-claim age; or days later, redriven from the DLQ as the runbook says), the
    conversation got more messages than the marker search reads (100, newest first). Not seeing
    the marker in a partial look proves nothing: it must not take the claim over and send again
    (within max_age), nor record the attempt given up (past it). It stays claimed, its job in the
    DLQ (alarmed) for a person to decide, and never a second message."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    gateway = system.retry.worker._twilio
    create = gateway.create_message
    system.monkeypatch.setattr(gateway, "create_message", after(create))
    assert system.poll(crash=True).crashed  # created, then died before recording
    system.monkeypatch.setattr(gateway, "create_message", create)
    [retry] = system.created(conversation)
    for n in range(120):  # a busy (group, or chat-heavy) conversation
        sim.add_message(conversation, f"chat {n}")
    system.advance(later)
    system.redeliver_now()
    system.drain()
    assert len(system.created(conversation)) == 1, outcome
    attempt = system.attempts(original)[1]
    assert attempt["state"] != "gave_up", outcome
    assert attempt["state"] == "claimed"  # undecided, and so...
    [dead] = system.queued(system.dlq_url)  # ...visible, not lost
    assert dead["event"]["message_sid"] == original
    assert retry["sid"] != original


def test_the_marker_search_reads_no_further_back_than_the_failed_message(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """A retry is always newer than the message it retries: the search that reaches that message
    has seen every place the retry could be, and stops there (one page, not the limit)."""
    conversation = sim.add_conversation()
    for n in range(150):  # an old conversation: history before the failed message
        sim.add_message(conversation, f"old {n}")
    original = sim.add_message(conversation)
    gateway = system.retry.worker._twilio
    service = sim.service_of(conversation)
    sim.requests.clear()
    assert gateway.find_retry(service, conversation, original, 1, retry_of=original) is None
    assert len(sim.requests) == 1
    sim.add_message(conversation, attributes={"redeliver": {"root": original, "attempt": 1}})
    found = gateway.find_retry(service, conversation, original, 1, retry_of=original)
    assert found == sim.messages(conversation)[-1]["sid"]


# -- a record deferred for time is not a failed receive --------------------------------------------


def test_a_job_deferred_for_lack_of_time_never_reaches_the_dlq(system: RetrySystem) -> None:
    """In a storm a job can sit at the tail of batch after batch, each invocation running out of
    time before it (a record starts only with `record_budget_seconds` left). A deferral is not a
    failure: it must not cost a receive, or after RetryMaxReceiveCount of them a healthy job lands
    in the DLQ, never tried."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    budget = record_budget_seconds(2)  # the harness's Twilio timeout

    def out_of_time(event: dict[str, Any], context: Any) -> Any:
        return system.retry.lambda_handler(event, FakeContext(remaining_ms=(budget - 1) * 1000))

    for _ in range(max_receive_count() + 1):
        batch = poll_once(system.sqs, system.queue_url, out_of_time, batch_size=5)
        assert batch.received == 1
        system.redeliver_now()
    assert system.created() == []
    assert system.queued(system.dlq_url) == []
    system.drain()
    assert len(system.created(conversation)) == 1
    assert system.attempts(original)[1]["state"] == "sent"


def test_a_twilio_timeout_no_invocation_could_start_a_record_under_fails_the_first_invocation(
    system: RetrySystem,
) -> None:
    """Deferred jobs are queued again, not failed: with a record budget over the function's
    timeout every job would be deferred forever, neither decided nor in the DLQ."""
    timeout = int(system.stack.environment("RetryFunction")["RETRY_TIMEOUT_SECONDS"])
    with pytest.raises(ConfigurationError, match="TWILIO_TIMEOUT_SECONDS"):
        system.load_retry(TWILIO_TIMEOUT_SECONDS=str(timeout // 5))


# -- who a new message reaches is who is in the conversation now -----------------------------------


def test_a_conversation_that_became_a_group_since_the_failure_is_not_resent(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The original went to one recipient (its `delivery.total` is 1). Someone joined before the
    retry: a new message would reach them too, another person's message (a one-time code, say).
    The group check counts the conversation's members now, not the original's recipients."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.add_participant(conversation, "+15559990001")
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[1]["reason"] == "group_conversation"


def test_the_failed_recipient_is_found_in_the_same_listing_as_the_members(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """One participants listing answers both questions (how many, and the failed recipient's
    address for suppressions and quiet hours): no call of its own for the address."""
    conversation, original = system.message(address="+15551230001")
    system.fail(conversation, original, 30003)
    sim.requests.clear()
    system.drain()
    assert len(system.created(conversation)) == 1
    paths = [path for _, path in sim.requests]
    assert sum(path.endswith("/Participants") for path in paths) == 1
    assert not any("/Participants/MB" in path for path in paths)
