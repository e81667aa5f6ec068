"""RetryFunction end to end (DESIGN invariants 4, 5, 6): real handlers, template in moto, real
twilio-python over HTTP to the simulator. The count that matters: created messages per
(original, attempt) is exactly one, whatever crashes or redeliveries happen."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from redeliver.domain.policy_parse import PolicyError
from redeliver.usecases.retry.outcomes import (
    AWS_FAULT_SECONDS,
    THROTTLED_SECONDS,
    record_budget_seconds,
)
from tests.integration.conftest import WorkerLog
from tests.integration.retry_system import RetrySystem, after, marker
from tests.lambdas import invoke, load_function
from tools.lambdas import FakeContext
from tools.stack import deploy, load_template
from tools.twilio_sim.faults import Fault
from tools.twilio_sim.simulator import TwilioSimulator

# -- each outcome end to end ----------------------------------------------------------------------


def test_a_due_retry_sends_one_new_message_marked_and_linked_both_ways(
    system: RetrySystem,
) -> None:
    conversation, original = system.message(attributes={"order": 42}, author="shop")
    system.fail(conversation, original, 30003)
    system.drain()
    [new] = system.created(conversation)
    assert new["body"] == "Your code is 123456"
    assert new["author"] == "shop"
    attributes = json.loads(new["attributes"])
    assert attributes["order"] == 42
    assert attributes["redeliver"] == {"retry_of": original, "root": original, "attempt": 1}
    assert system.attempts(original)[1]["state"] == "sent"
    assert system.attempts(original)[1]["new_message_sid"] == new["sid"]
    origin = system.item(new["sid"], "ORIGIN")
    assert origin is not None
    assert (origin["root"], origin["retry_of"], origin["attempt"]) == (original, original, "1")
    receipt = system.item(original, f"RCPT#{_receipt(system, original)}")
    assert receipt is not None
    assert "retry_pending_at" not in receipt  # the outbox mark is cleared


def _receipt(system: RetrySystem, message: str) -> str:
    items = system.dynamodb.query(
        TableName=system.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
        ExpressionAttributeValues={":pk": {"S": f"MSG#{message}"}, ":r": {"S": "RCPT#"}},
    )["Items"]
    return str(items[0]["sk"]["S"].removeprefix("RCPT#"))


def test_a_retry_waits_for_its_delay_then_sends_with_two_reads_and_one_create(
    system: RetrySystem,
    sim: TwilioSimulator,
) -> None:
    conversation, original = system.message()
    system.now = system.now.replace(minute=0, second=10)  # 5 s after the failure: 60 s delay
    system.fail(conversation, original, 30003)
    system.poll()
    [waiting] = system.queued()
    assert waiting["due_at"] == int(system.now.timestamp()) + 55
    assert system.created() == []
    assert sim.requests == []  # waiting costs no Twilio call
    system.advance(60)
    aws = system.count_aws()
    system.poll()
    assert len(system.created(conversation)) == 1
    # the message; the participants now (how many a new message reaches, and the failed
    # receipt's recipient's address: suppressed?); the create
    assert [(m, "/".join(p.split("/")[-2:])) for m, p in sim.requests] == [
        ("GET", f"Messages/{original}"),
        ("GET", f"{conversation}/Participants"),
        ("POST", f"{conversation}/Messages"),
    ]
    # the chain read, the suppression read, the claim, the record (both links), the follow-up
    assert aws == ["Query", "GetItem", "TransactWriteItems", "TransactWriteItems", "SendMessage"]


def test_a_wait_longer_than_sqs_allows_is_made_of_hops(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30009, after=60)  # "*": 300 s
    system.now = system.now.replace(minute=1, second=0)
    system.poll()
    system.advance(200)
    system.poll()  # not due: another hop, nothing sent
    assert system.created() == []
    [hop] = system.queued()
    assert hop["due_at"] == int(system.now.timestamp()) + 100
    system.advance(100)
    system.drain()
    assert len(system.created(conversation)) == 1


def test_a_permanent_error_is_a_recorded_give_up_after_one_fetch(
    system: RetrySystem,
    sim: TwilioSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30007, status="failed")
    aws = system.count_aws()
    system.drain()
    assert system.attempts(original)[1]["state"] == "gave_up"
    assert system.attempts(original)[1]["reason"] == "permanent_error"
    # Without an ORIGIN link only the marker tells an original from a retry.
    assert [m for m, _ in sim.requests] == ["GET"]
    assert aws == ["UpdateItem", "Query", "PutItem"]  # mark cleared, chain read, give-up
    output = capsys.readouterr().out
    assert '"RetryGaveUp"' in output
    assert '"reason":"permanent_error"' in output


def test_a_receipt_delivered_before_the_worker_ran_is_not_resent(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003, after=5)
    assert system.webhook(conversation, original, "delivered", after=30) == 200
    system.drain()
    assert system.created() == []
    assert system.attempts(original) == {}


def test_a_group_conversation_is_not_resent_unless_the_policy_allows_it(
    system: RetrySystem,
) -> None:
    conversation, original = system.message(recipients=3)
    system.fail(conversation, original, 30003)
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[1]["reason"] == "group_conversation"

    system.load_retry({**DEFAULT_POLICY_DOCUMENT, "group_conversations": "allow"})
    conversation, other = system.message(recipients=3)
    system.fail(conversation, other, 30003)
    system.drain()
    assert len(system.created(conversation)) == 1


def test_a_message_older_than_max_age_is_given_up(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.advance(86_400)
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[1]["reason"] == "max_age"


@pytest.mark.parametrize("enabled", [False, "false"])
def test_a_message_can_opt_out(system: RetrySystem, enabled: object) -> None:
    conversation, original = system.message(attributes={"redeliver": {"enabled": enabled}})
    system.fail(conversation, original, 30003)
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[1]["reason"] == "disabled_by_message"


def test_a_template_is_resent_only_with_known_variables(system: RetrySystem) -> None:
    template = "HX" + "1" * 32
    conversation, unknown = system.message(content_sid=template)
    system.fail(conversation, unknown, 30009)
    other, known = system.message(
        content_sid=template, attributes={"redeliver": {"content_variables": {"1": "Ada"}}}
    )
    system.fail(other, known, 30009)
    system.advance(300)
    system.drain()
    assert system.attempts(unknown)[1]["reason"] == "template_variables_unknown"
    [sent] = system.created(other)
    assert sent["content_sid"] == template
    assert json.loads(sent["content_variables"]) == {"1": "Ada"}


def test_twilio_refusing_the_create_is_a_recorded_give_up(
    system: RetrySystem,
    sim: TwilioSimulator,
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault(status=400, code=21610))
    system.drain()
    assert system.attempts(original)[1]["reason"] == "twilio_rejected_21610"
    assert system.created() == []


def test_a_failed_retry_continues_the_chain_until_max_attempts(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    failing = original
    for attempt in (1, 2, 3):
        system.advance(3_600)
        system.drain()
        [new] = [m for m in system.created(conversation) if marker(m)["attempt"] == attempt]
        assert marker(new) == {"retry_of": failing, "root": original, "attempt": attempt}
        failing = new["sid"]
        system.fail(conversation, failing, 30003, after=60 * attempt)
    system.advance(3_600)
    system.drain()
    assert len(system.created(conversation)) == 3
    attempts = system.attempts(original)
    assert [attempts[n]["state"] for n in (1, 2, 3, 4)] == ["sent", "sent", "sent", "gave_up"]
    assert attempts[4]["reason"] == "max_attempts"


def claimed_by_a_dead_worker(
    system: RetrySystem, root: str, attempt: int, retry_of: str, conversation: str
) -> None:
    """The claim a worker left when it died between create and record: what makes a marker
    true (DESIGN invariant 9)."""
    system.dynamodb.put_item(
        TableName=system.table,
        Item={
            "pk": {"S": f"MSG#{root}"},
            "sk": {"S": f"ATTEMPT#{attempt:03d}"},
            "state": {"S": "claimed"},
            "claimed_at": {"N": str(int(system.now.timestamp()))},
            "failed_message_sid": {"S": retry_of},
            "first_sent_at": {"S": "2026-11-27T10:00:00Z"},
            "way": {"S": "retry"},
            "service_sid": {"S": system.sim.service_of(conversation)},
            "conversation_sid": {"S": conversation},
        },
    )


def test_a_retry_whose_origin_link_was_lost_continues_by_its_marker(system: RetrySystem) -> None:
    """The worker died between create and record, and the new message failed meanwhile."""
    conversation, original = system.message()
    claimed_by_a_dead_worker(system, original, 3, original, conversation)
    retry = system.sim.add_message(
        conversation,
        attributes={"redeliver": {"retry_of": original, "root": original, "attempt": 3}},
    )
    system.fail(conversation, retry, 30003)
    system.advance(3_600)
    system.drain()
    assert system.created() == []
    assert system.attempts(original)[4]["reason"] == "max_attempts"


# -- duplicates and redeliveries --------------------------------------------------------------


def test_the_same_sqs_record_delivered_twice_sends_once(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    record = system.sqs.receive_message(QueueUrl=system.queue_url, VisibilityTimeout=0)
    event_messages = record["Messages"]
    from tools.sqs_poller import lambda_record

    arn = "arn:aws:sqs:us-east-1:123456789012:q"
    event = {"Records": [lambda_record(m, arn, "us-east-1") for m in event_messages]}

    first = system.retry.lambda_handler(event, FakeContext(remaining_ms=60_000))
    second = system.retry.lambda_handler(event, FakeContext(remaining_ms=60_000))
    assert first == second == {"batchItemFailures": []}
    assert len(system.created(conversation)) == 1


def test_two_records_for_the_same_failure_send_once(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    [job] = system.queued()
    system.sqs.send_message(QueueUrl=system.queue_url, MessageBody=json.dumps(job))  # sweeper
    system.drain()
    assert len(system.created(conversation)) == 1


def test_two_receipts_of_one_message_failing_send_once(system: RetrySystem) -> None:
    system.load_retry({**DEFAULT_POLICY_DOCUMENT, "group_conversations": "allow"})
    conversation, original = system.message(recipients=2)
    assert system.webhook(conversation, original, "undelivered", 30003, receipt="a") == 200
    assert system.webhook(conversation, original, "undelivered", 30003, receipt="b") == 200
    system.drain()
    assert len(system.created(conversation)) == 1


# -- crashes between every two steps -------------------------------------------------------------


# The simulated crash unwinds through Powertools' log_metrics, which flushes an empty set and
# warns; a real dead runtime flushes nothing.
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.parametrize("step", ["claim", "create_message", "record_sent", "clear_pending"])
def test_a_crash_after_any_step_still_sends_exactly_once(
    system: RetrySystem,
    step: str,
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    worker = system.retry.worker
    target = {"create_message": worker._twilio, "clear_pending": worker._outbox}.get(
        step, worker._attempts
    )
    real = getattr(target, step)
    system.monkeypatch.setattr(target, step, after(real))
    batch = system.poll(crash=True)
    assert batch.crashed
    system.monkeypatch.setattr(target, step, real)
    # Redelivered while the claim is fresh: its worker may still be sending, so hands off.
    system.redeliver_now()
    system.advance(30)
    again = system.poll()
    assert again.received == 1
    assert bool(again.failed) == (step in ("claim", "create_message"))
    # After the visibility timeout the claim is stale: look for the marker, then send or record.
    system.advance(360)
    system.redeliver_now()
    system.drain()
    assert len(system.created(conversation)) == 1
    attempt = system.attempts(original)[1]
    assert attempt["state"] == "sent"
    assert attempt["new_message_sid"] == system.created(conversation)[0]["sid"]
    assert system.item(attempt["new_message_sid"], "ORIGIN") is not None


def test_a_create_that_timed_out_after_twilio_stored_it_is_found_not_resent(
    system: RetrySystem,
    sim: TwilioSimulator,
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault(timeout_after_create=True, delay=3.0))  # client timeout: 2 s
    batch = system.poll()
    assert batch.failed  # ambiguous: back to SQS, the claim kept
    assert len(system.created(conversation)) == 1
    system.advance(3_600)
    system.redeliver_now()
    system.drain()
    assert len(system.created(conversation)) == 1
    assert system.attempts(original)[1]["state"] == "sent"


def test_a_message_of_another_conversation_service_is_retried_in_that_service(
    system: RetrySystem,
    sim: TwilioSimulator,
) -> None:
    """Every call goes to the receipt's ChatServiceSid, not the default service (whose short
    /v1/Conversations path 404s for it: once given up as message_not_found)."""
    service = sim.add_service("brand-b")
    conversation, original = system.message(service=service)
    system.fail(conversation, original, 30003)
    system.drain()
    [new] = system.created(conversation)
    assert new["chat_service_sid"] == service
    assert system.attempts(original)[1]["state"] == "sent"
    scoped = f"/v1/Services/{service}/Conversations/{conversation}/"
    assert sim.requests
    assert [path for _, path in sim.requests if not path.startswith(scoped)] == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_5xx_after_twilio_stored_the_create_sends_exactly_one_message(
    system: RetrySystem,
    sim: TwilioSimulator,
    status: int,
) -> None:
    """Twilio's edge answered 5xx, but the message was stored. The claim stays; once stale, the
    marker search finds the message and records it: never a second send."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault.error_after(status))
    assert system.poll().failed  # ambiguous: back to SQS, the claim kept
    assert len(system.created(conversation)) == 1
    assert system.attempts(original)[1]["state"] == "claimed"
    system.redeliver_now()
    system.advance(30)
    assert system.poll().failed  # a fresh claim: its worker may still be sending
    assert len(system.created(conversation)) == 1
    system.advance(3_600)
    system.redeliver_now()
    system.drain()
    [new] = system.created(conversation)
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", new["sid"])
    search = f"/v1/Services/{sim.chat_service_sid}/Conversations/{conversation}/Messages"
    assert ("GET", search) in sim.requests  # resolved by the marker search


def test_a_5xx_before_the_store_is_resent_once_after_the_marker_search_finds_nothing(
    system: RetrySystem,
    sim: TwilioSimulator,
) -> None:
    """A 5xx the client cannot tell from one after the store: the same path, and one send."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault.error_before(503))
    assert system.poll().failed
    assert system.created(conversation) == []
    assert system.attempts(original)[1]["state"] == "claimed"  # maybe sent: kept
    system.advance(3_600)
    system.redeliver_now()
    system.drain()
    [new] = system.created(conversation)
    assert system.attempts(original)[1]["new_message_sid"] == new["sid"]


def test_a_refused_connection_releases_the_claim_and_sends_once_later(
    system: RetrySystem,
    sim: TwilioSimulator,
) -> None:
    """A create that never left (a real refused connect) proves nothing was sent."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault.connection_refused(1.0))  # the port closes after the fetch
    assert system.poll().failed
    assert system.created(conversation) == []
    assert system.attempts(original) == {}  # released: no marker search needed
    time.sleep(1.2)  # the simulator listens again
    system.redeliver_now()
    system.drain()
    assert len(system.created(conversation)) == 1


def test_retries_fire_post_event_webhooks_only_when_the_template_enables_it(
    system: RetrySystem,
    sim: TwilioSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RetryWebhooksEnabled → TWILIO_WEBHOOK_ENABLED → X-Twilio-Webhook-Enabled."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.drain()
    assert [m["x_twilio_webhook_enabled"] for m in system.created(conversation)] == [None]

    stack = deploy(f"redeliver-{uuid.uuid4().hex[:8]}", {"RetryWebhooksEnabled": "true"})
    enabled = RetrySystem(stack, sim, monkeypatch)
    conversation, original = enabled.message()
    enabled.fail(conversation, original, 30003)
    enabled.drain()
    assert [m["x_twilio_webhook_enabled"] for m in enabled.created(conversation)] == ["true"]


def test_429_then_success_sends_once(system: RetrySystem, sim: TwilioSimulator) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault(status=429, code=20429))
    first = system.poll()
    assert first.failed
    assert system.attempts(original) == {}  # nothing was sent: the claim was released
    system.redeliver_now()
    system.drain()
    assert len(system.created(conversation)) == 1


def test_twilio_unreachable_goes_back_to_the_queue(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.load_retry(TWILIO_CONVERSATIONS_URL="http://127.0.0.1:9")  # nothing listens there
    batch = system.poll()
    assert batch.failed
    assert batch.error == ""  # reported, not raised: no Lambda error for a record failure
    assert system.attempts(original) == {}


def test_a_poisoned_record_reaches_the_dlq_after_max_receive_count(system: RetrySystem) -> None:
    system.sqs.send_message(QueueUrl=system.queue_url, MessageBody='{"v": 1, "event": {}}')
    receives = int(load_template()["Parameters"]["RetryMaxReceiveCount"]["Default"])
    for _ in range(receives):
        batch = system.poll()
        assert batch.failed
        system.redeliver_now()
    # moto moves a message to the DLQ lazily, on the receive after the last allowed one
    # (AWS moves it as the count is exceeded); either way it is no longer processed.
    assert system.poll().received == 0
    dead = system.sqs.receive_message(QueueUrl=system.dlq_url)["Messages"]
    assert json.loads(dead[0]["Body"]) == {"v": 1, "event": {}}


def test_an_invalid_policy_fails_the_first_invocation_naming_the_field(
    system: RetrySystem,
) -> None:
    with pytest.raises(PolicyError, match=r"rules\[0\]\.delays"):
        system.load_retry({"rules": [{"codes": "*", "action": "retry", "delays": "soon"}]})


def test_a_delivery_that_lands_while_the_worker_fetches_stops_the_resend(
    system: RetrySystem,
) -> None:
    """The claim's transaction re-checks the receipt: the read before it is not enough."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    gateway = system.retry.worker._twilio
    fetch = gateway.fetch_message

    def fetch_while_delivered(*args: Any) -> Any:
        assert system.webhook(conversation, original, "delivered", after=40) == 200
        return fetch(*args)

    system.monkeypatch.setattr(gateway, "fetch_message", fetch_while_delivered)
    system.drain()
    assert system.created() == []
    assert system.attempts(original) == {}


# Follow-ups (RetryRecovered / RetryNotRecovered / RetryUnconfirmed): test_follow_up.py.


# -- the outbox mark -----------------------------------------------------------------------------


def sweep_now(system: RetrySystem) -> int:
    """The sweeper, as if its grace period had passed for every mark written so far."""
    environment = {**system.stack.environment("SweepFunction"), "SWEEP_GRACE_SECONDS": "0"}
    sweeper = load_function("sweep", environment, system.monkeypatch)
    swept: int = invoke(sweeper, {})["swept"]
    return swept


@pytest.mark.parametrize("why", ["policy_delay", "back_to_the_queue"])
def test_a_job_waiting_in_the_queue_past_the_sweep_grace_is_not_swept(
    system: RetrySystem, sim: TwilioSimulator, why: str
) -> None:
    """The worker clears the mark when it receives the job: from then on SQS holds it (its
    redelivery and its DLQ), so OutboxSwept means only that an enqueue was lost."""
    conversation, original = system.message()
    if why == "policy_delay":
        system.now = system.now.replace(minute=0, second=10)  # 5 s after the failure: 60 s delay
    else:
        sim.fail_next("GET", Fault(status=429, code=20429))  # the fetch is throttled
    system.fail(conversation, original, 30003)
    batch = system.poll()
    assert bool(batch.failed) == (why == "back_to_the_queue")
    assert sweep_now(system) == 0
    system.redeliver_now()
    assert len(system.queued()) == 1  # the job itself, waiting: nothing swept next to it


# -- a give-up meets another worker's claim ---------------------------------------------------


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_give_up_never_overwrites_a_claim_whose_message_went_out(system: RetrySystem) -> None:
    """Two receipts of one message: one says resend, the other gives up. The give-up meets the
    first worker's claim: young, it goes back to the queue; stale, the marker search finds the
    message the first worker created, and the attempt is recorded sent, not given up."""
    system.load_retry({**DEFAULT_POLICY_DOCUMENT, "group_conversations": "allow"})
    conversation, original = system.message(recipients=2)
    assert system.webhook(conversation, original, "undelivered", 30003, receipt="a") == 200
    gateway = system.retry.worker._twilio
    create = gateway.create_message
    system.monkeypatch.setattr(gateway, "create_message", after(create))
    assert system.poll(crash=True).crashed  # created, then died before recording
    system.monkeypatch.setattr(gateway, "create_message", create)
    assert system.webhook(conversation, original, "failed", 30007, after=6, receipt="b") == 200
    give_up = system.poll()
    assert give_up.received == 1
    assert give_up.failed  # a young claim: its worker may be sending
    assert system.attempts(original)[1]["state"] == "claimed"
    system.advance(360)
    system.redeliver_now()
    system.drain()
    assert len(system.created(conversation)) == 1
    attempt = system.attempts(original)[1]
    assert attempt["state"] == "sent"
    assert attempt["new_message_sid"] == system.created(conversation)[0]["sid"]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_give_up_takes_over_a_stale_claim_that_sent_nothing(system: RetrySystem) -> None:
    system.load_retry({**DEFAULT_POLICY_DOCUMENT, "group_conversations": "allow"})
    conversation, original = system.message(recipients=2)
    assert system.webhook(conversation, original, "undelivered", 30003, receipt="a") == 200
    attempts = system.retry.worker._attempts
    claim = attempts.claim
    system.monkeypatch.setattr(attempts, "claim", after(claim))
    [dead] = system.poll(crash=True).failed  # claimed, then died before the create
    system.monkeypatch.setattr(attempts, "claim", claim)
    system._in_flight.pop(dead)  # its record stays invisible for the rest of the test
    assert system.webhook(conversation, original, "failed", 30007, after=6, receipt="b") == 200
    assert system.poll().failed  # the claim is young
    system.advance(180)  # past the claim's stale age (150 s)
    system.redeliver_now()
    system.drain()
    assert system.created() == []
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["reason"]) == ("gave_up", "permanent_error")
    assert int(attempt["claimed_at"]) == int(system.now.timestamp())  # under its own claim


# -- a retry's failure before its ORIGIN link is written -----------------------------------------


def test_a_retrys_give_up_before_its_origin_link_is_recorded_under_its_root(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """Its worker is between create and record (or died there): no ORIGIN yet. The marker says
    where the failure belongs, so the message is fetched before anything is recorded."""
    conversation, original = system.message()
    claimed_by_a_dead_worker(system, original, 1, original, conversation)
    retry = sim.add_message(
        conversation,
        attributes={"redeliver": {"retry_of": original, "root": original, "attempt": 1}},
    )
    system.fail(conversation, retry, 30007, status="failed")  # permanent: gives up at once
    system.drain()
    assert system.attempts(retry) == {}
    attempt = system.attempts(original)[2]
    assert (attempt["state"], attempt["reason"]) == ("gave_up", "permanent_error")
    assert attempt["failed_message_sid"] == retry


# -- a record sent back to the queue: when it comes back ------------------------------------------


# moto keeps a message's visibility as a wall-clock deadline: on a loaded machine seconds pass
# between the handler's ChangeMessageVisibility and the test's reading of it.
SLACK = 5


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_record_behind_a_young_claim_comes_back_when_the_claim_turns_stale(
    system: RetrySystem, worker_log: WorkerLog
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    attempts = system.retry.worker._attempts
    claim = attempts.claim
    system.monkeypatch.setattr(attempts, "claim", after(claim))
    system.poll(crash=True)  # claimed, then died
    system.monkeypatch.setattr(attempts, "claim", claim)
    system.redeliver_now()
    system.advance(30)
    worker_log.records.clear()
    [failed] = system.poll().failed
    stale = system.retry.settings.claim_stale_seconds
    assert stale - 30 - SLACK <= system.visible_in(failed) <= stale - 30 + 2  # not 360 s
    [line] = worker_log.lines("retry job back to the queue")
    assert line["message_sid"] == original
    assert (line["root"], line["attempt"]) == (original, 1)
    assert line["reason"] == "another worker holds the claim"
    assert line["visible_in"] == stale - 30 + 1


def test_a_throttled_create_comes_back_in_a_few_seconds(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault(status=429, code=20429))
    [failed] = system.poll().failed
    low, high = THROTTLED_SECONDS
    assert low - SLACK <= system.visible_in(failed) <= high


def test_an_ambiguous_create_comes_back_when_its_own_claim_turns_stale(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    sim.fail_next("POST", Fault(timeout_after_create=True, delay=3.0))  # client timeout: 2 s
    [failed] = system.poll().failed
    stale = system.retry.settings.claim_stale_seconds
    assert stale - SLACK <= system.visible_in(failed) <= stale + 1


def test_an_aws_fault_comes_back_soon(system: RetrySystem) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    attempts = system.retry.worker._attempts

    def throttled(*args: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "Query",
        )

    system.monkeypatch.setattr(attempts, "load_message", throttled)
    [failed] = system.poll().failed
    low, high = AWS_FAULT_SECONDS
    assert low - SLACK <= system.visible_in(failed) <= high


def test_a_record_that_keeps_coming_back_early_still_reaches_the_dlq(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """ChangeMessageVisibility keeps the receive count: maxReceiveCount and the DLQ still apply.
    No redeliver_now here: the worker's own visibility (0 s, the jitter pinned) brings it back."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.retry.worker._timing.jitter = lambda low, high: 0
    receives = int(load_template()["Parameters"]["RetryMaxReceiveCount"]["Default"])
    sim.fail_next("GET", *[Fault(status=429, code=20429)] * receives)
    for _ in range(receives):
        assert system.poll().failed
    assert system.poll().received == 0  # moto moves it on this receive (AWS: as it is exceeded)
    [dead] = system.queued(system.dlq_url)
    assert dead["event"]["message_sid"] == original


# -- a batch never outlives the function ---------------------------------------------------------


class Countdown(FakeContext):
    """Lambda's context, with less time left at each look."""

    def __init__(self, *remaining_ms: int) -> None:
        super().__init__()
        self.left = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self.left.pop(0) if len(self.left) > 1 else self.left[0]


def test_records_without_time_left_go_back_unstarted(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    for _ in range(3):
        system.fail(*system.message(), 30003)
    event = system.receive_event(3)
    budget = record_budget_seconds(2)  # the harness's Twilio timeout
    assert budget < int(system.stack.environment("RetryFunction")["RETRY_TIMEOUT_SECONDS"])
    context = Countdown(budget * 1000, budget * 1000 - 1)
    response = system.retry.lambda_handler(event, context)
    # Not failed (a deferral costs no receive: tests/integration/test_adversarial_retry.py) but
    # queued again as new messages, visible at once for an invocation with time.
    assert response["batchItemFailures"] == []
    assert len(system.created()) == 1  # the first record only
    # the message, its recipient, the create; none for the deferred ones
    assert [m for m, _ in sim.requests] == ["GET", "GET", "POST"]
    again = sorted(job["event"]["message_sid"] for job in system.queued() if "event" in job)
    deferred = [json.loads(r["body"])["event"]["message_sid"] for r in event["Records"][1:]]
    assert again == sorted(deferred)
