"""A retry we sent is followed up through Twilio's Receipts API, not through its webhook. What
Twilio reports is recorded through the webhook's own path (`Recorder`), so a failed retry whose
webhook never comes continues its chain; the verdict is Twilio's answer.

The template is deployed into moto; ingest and retry are the real handlers, the retry function's
twilio-python client talks HTTP to the simulator (`sim.set_receipt` is what its Receipts endpoint
reports). FOLLOW_UP_SECONDS is 0 here: a follow-up is due as soon as it is queued.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from redeliver.domain.jobs import FollowUp, parse_job
from redeliver.usecases.retry.follow_up import LOOKS
from redeliver.usecases.retry.outcomes import THROTTLED_SECONDS
from tests.integration.conftest import WorkerLog
from tests.integration.retry_system import T0, RetrySystem, after
from tests.lambdas import metric_names
from tools.lambdas import emitted_metrics
from tools.samples import sid
from tools.twilio_sim.faults import Fault
from tools.twilio_sim.simulator import TwilioSimulator

VERDICTS = {"RetryRecovered", "RetryNotRecovered", "RetryUnconfirmed"}
SLACK = 5  # moto's visibility is a wall-clock deadline: seconds pass on a loaded machine


def lookups(sim: TwilioSimulator) -> list[str]:
    return [path for method, path in sim.requests if method == "GET" and path.endswith("/Receipts")]


def send_retry(system: RetrySystem) -> tuple[str, str, str]:
    """A failure retried once: its follow-up is on the queue, due now."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll()  # sends the retry and queues its follow-up
    [new] = system.created(conversation)
    [follow_up] = system.queued()
    assert follow_up["kind"] == "follow_up"
    assert follow_up["conversation_sid"] == conversation
    assert follow_up["chat_service_sid"] == system.sim.service_of(conversation)
    return conversation, original, new["sid"]


def retry_receipt(system: RetrySystem, message: str) -> dict[str, Any]:
    [receipt] = system.sim.receipts[message]
    item = system.item(message, f"RCPT#{receipt['sid']}")
    assert item is not None, "the receipt Twilio reported is recorded"
    return item


def test_a_failed_retry_whose_webhook_never_comes_is_retried_as_the_next_attempt(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, original, retry = send_retry(system)
    sim.set_receipt(retry, "undelivered", 30003, updated=T0 + timedelta(seconds=30))
    # ... and the retry's `undelivered` webhook never comes.
    capsys.readouterr()
    system.poll()  # the follow-up asks Twilio
    emitted = metric_names(capsys.readouterr().out)
    assert "RetryNotRecovered" in emitted
    assert {"NewFailures", "FollowUpReceipts", "FollowUpFailures"} <= set(emitted)
    # The follow-up doing its job is not a lost webhook: ReconciledFailuresAlarm stays quiet.
    assert not {"ReconciledReceipts", "ReconciledFailures"} & set(emitted)
    assert len(lookups(sim)) == 1
    item = retry_receipt(system, retry)
    assert (item["status"], item["error_code"]) == ("undelivered", "30003")
    assert "retry_pending_at" in item  # the outbox mark, as a webhook's failure sets it
    [job] = system.queued()
    assert job["event"]["message_sid"] == retry

    system.advance(900)  # attempt 2's delay (default policy), from the retry's failure
    system.drain()  # the failure job, then the new retry's own follow-up
    created = system.created(conversation)
    assert len(created) == 2  # exactly one new message for the failed retry
    marker = json.loads(created[1]["attributes"])["redeliver"]
    assert marker == {"retry_of": retry, "root": original, "attempt": 2}
    attempts = system.attempts(original)
    assert attempts[2]["state"] == "sent"
    assert attempts[2]["failed_message_sid"] == retry
    assert system.attempts(retry) == {}  # the chain resolved to its root, not a new one


@pytest.mark.parametrize(
    ("reported", "verdict"),
    [
        (("delivered", None), "RetryRecovered"),
        (("read", None), "RetryRecovered"),
        (("undelivered", 30003), "RetryNotRecovered"),
        (("failed", 30008), "RetryNotRecovered"),
        (("sent", None), "RetryUnconfirmed"),
    ],
)
def test_the_verdict_is_twilios_answer(
    system: RetrySystem,
    sim: TwilioSimulator,
    capsys: pytest.CaptureFixture[str],
    reported: tuple[str, int | None],
    verdict: str,
) -> None:
    status, code = reported
    _, _, retry = send_retry(system)
    if status != "sent":
        sim.set_receipt(retry, status, code, updated=T0 + timedelta(seconds=30))
    capsys.readouterr()
    if status == "sent":
        system.drain()  # each look
    else:
        system.poll()  # (a drain would go on to the failed retry's own next attempt)
    emitted = set(metric_names(capsys.readouterr().out))
    assert verdict in emitted
    assert not (VERDICTS - {verdict}) & emitted
    # One Twilio call per look; a retry still `sent` is looked at LOOKS times before its verdict.
    assert len(lookups(sim)) == (LOOKS if verdict == "RetryUnconfirmed" else 1)
    assert retry_receipt(system, retry)["status"] == status  # recorded, `sent` included


def test_a_retry_without_receipts_is_unconfirmed(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Twilio reports nothing (no SMS/WhatsApp participant left, say): nothing to record."""
    _, _, retry = send_retry(system)
    sim.receipts[retry] = []
    capsys.readouterr()
    system.drain()
    emitted = set(metric_names(capsys.readouterr().out))
    assert "RetryUnconfirmed" in emitted
    assert not (VERDICTS - {"RetryUnconfirmed"}) & emitted
    assert len(lookups(sim)) == LOOKS


def test_a_throttled_lookup_comes_back_in_a_few_seconds_then_decides(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, retry = send_retry(system)
    sim.set_receipt(retry, "delivered", updated=T0 + timedelta(seconds=30))
    sim.fail_next("GET", Fault.throttled())
    capsys.readouterr()
    [failed] = system.poll().failed
    low, high = THROTTLED_SECONDS
    assert low - SLACK <= system.visible_in(failed) <= high
    emitted = set(metric_names(capsys.readouterr().out))
    assert "RetryError" in emitted
    assert not VERDICTS & emitted  # nothing counted yet: it comes back
    system.redeliver_now()
    system.poll()
    emitted = set(metric_names(capsys.readouterr().out))
    assert "RetryRecovered" in emitted
    assert len(lookups(sim)) == 2
    assert system.queued() == []


def test_a_retry_twilio_no_longer_knows_is_counted_unconfirmed_not_lost(
    system: RetrySystem, sim: TwilioSimulator, worker_log: WorkerLog
) -> None:
    conversation, _, retry = send_retry(system)
    with sim._lock:  # the conversation was deleted since: Twilio answers 404
        sim.conversations[conversation].messages.clear()
    worker_log.records.clear()
    batch = system.poll()
    assert batch.failed == []  # decided, not sent back
    [line] = worker_log.lines("retry followed up")
    assert (line["verdict"], line["twilio_error"]) == ("RetryUnconfirmed", "not_found")
    assert line["message_sid"] == retry
    assert len(lookups(sim)) == 1
    assert system.queued() == []


def test_a_follow_up_queued_before_the_deploy_is_read_and_judged_from_our_table(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An old body names no conversation or service: Twilio cannot be asked, so the receipts
    webhooks recorded decide, as they did before follow-ups asked Twilio."""
    conversation, retry = system.message()
    old = {
        "v": 1,
        "kind": "follow_up",
        "message_sid": retry,
        "root": sid("IM", "root"),
        "attempt": 1,
        "due_at": int(T0.timestamp()),
    }
    body = json.dumps(old)
    assert parse_job(body) == FollowUp(retry, sid("IM", "root"), 1, int(T0.timestamp()), "", "")
    assert system.webhook(conversation, retry, "delivered", after=30) == 200
    system.sqs.send_message(QueueUrl=system.queue_url, MessageBody=body)
    capsys.readouterr()
    batch = system.poll()
    assert batch.failed == []
    emitted = set(metric_names(capsys.readouterr().out))
    assert "RetryRecovered" in emitted  # no attempt to mark it against: counted, not dropped
    assert system.attempts(sid("IM", "root")) == {}  # and no stray attempt item made
    assert lookups(sim) == []


def test_a_follow_up_keeps_its_lookup_fields_across_a_hop() -> None:
    job = FollowUp(sid("IM", 1), sid("IM", 0), 2, 1000, sid("CH", 1), sid("IS", 1))
    assert parse_job(job.due(2000).to_json()) == FollowUp(
        sid("IM", 1), sid("IM", 0), 2, 2000, sid("CH", 1), sid("IS", 1)
    )


def test_a_failure_a_follow_up_finds_is_counted_as_its_own_not_as_a_lost_webhook(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """ReconciledFailures means webhook delivery is broken (ReconciledFailuresAlarm); a failed
    retry found by its follow-up is just the follow-up working, counted FollowUpFailures, and
    its receipts FollowUpReceipts by status. It is queued all the same."""
    _, _, retry = send_retry(system)
    sim.set_receipt(retry, "failed", 30008, updated=T0 + timedelta(seconds=30))
    capsys.readouterr()
    system.poll()
    counted = [
        (name, dimensions.get("status"))
        for name, dimensions, _ in emitted_metrics(capsys.readouterr().out)
    ]
    assert ("FollowUpFailures", None) in counted
    assert ("FollowUpReceipts", "failed") in counted
    assert not [name for name, _ in counted if name.startswith("Reconcile")]
    [job] = system.queued()
    assert job["event"]["message_sid"] == retry  # queued exactly as a webhook's failure


# The simulated crash unwinds through Powertools' log_metrics, which flushes an empty set and
# warns; a real dead runtime flushes nothing.
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_follow_up_lost_after_the_record_is_queued_again_and_the_chain_goes_on(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    """The worker dies after record_sent, before its follow-up is queued. The record comes back,
    finds the attempt `sent` and queues the follow-up again. No webhook ever comes for the retry;
    Twilio's receipts say it failed: the chain's next attempt is made, once."""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    attempts = system.retry.worker._attempts
    real = attempts.record_sent
    system.monkeypatch.setattr(attempts, "record_sent", after(real))
    assert system.poll(crash=True).crashed
    system.monkeypatch.setattr(attempts, "record_sent", real)
    [retry] = system.created(conversation)
    assert system.queued() == []  # the follow-up was never queued
    sim.set_receipt(retry["sid"], "undelivered", 30003, updated=T0 + timedelta(seconds=90))

    system.redeliver_now()
    system.advance(30)
    system.poll()  # the attempt is `sent`: a duplicate, and the follow-up queued again
    [follow_up] = system.queued()
    assert (follow_up["kind"], follow_up["message_sid"]) == ("follow_up", retry["sid"])
    system.poll()  # the follow-up asks Twilio, records the failure, queues its job
    [job] = system.queued()
    assert job["event"]["message_sid"] == retry["sid"]
    system.advance(900)  # attempt 2's delay (default policy)
    system.drain()
    created = system.created(conversation)
    assert len(created) == 2  # exactly one attempt-2 message
    marker = json.loads(created[1]["attributes"])["redeliver"]
    assert marker == {"retry_of": retry["sid"], "root": original, "attempt": 2}
    assert system.attempts(original)[2]["state"] == "sent"


def test_a_follow_up_delivered_twice_counts_its_verdict_once(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQS delivers at least once, and a redelivered retry record queues its follow-up again:
    each copy asks Twilio and records (idempotent), but the verdict is the attempt's, once."""
    _, original, retry = send_retry(system)
    [body] = system.queued()
    sim.set_receipt(retry, "delivered", updated=T0 + timedelta(seconds=30))
    capsys.readouterr()
    system.poll()
    system.sqs.send_message(QueueUrl=system.queue_url, MessageBody=json.dumps(body))
    system.poll()
    emitted = metric_names(capsys.readouterr().out)
    assert [name for name in emitted if name in VERDICTS] == ["RetryRecovered"]
    assert len(lookups(sim)) == 2  # each copy asked: Twilio's truth, recorded idempotently
    assert "followed_up_at" in system.attempts(original)[1]
