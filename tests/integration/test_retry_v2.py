"""Policy v2 through the real retry handler, moto and the Twilio simulator: each action, quiet
hours, the unmapped-code metric, and crash injection around the SMS fallback."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from redeliver.adapters.dynamodb.suppressions import address_hash
from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT, stable_jitter
from tests.integration.conftest import WorkerLog
from tests.integration.retry_system import T0, RetrySystem, after, marker
from tests.lambdas import metric_names
from tools.twilio_sim.faults import Fault
from tools.twilio_sim.simulator import TwilioSimulator

HX = "HX" + "ab" * 16
SMS_FROM = "+15550100000"
NEW_YORK = "+12125550100"  # 05:00 in New York at T0 (10:00 UTC)
LOS_ANGELES = "+14155550100"
POLICY = {
    **DEFAULT_POLICY_DOCUMENT,
    "suppress_days": 30,
    "rules": [
        {
            "codes": [63016],
            "action": "template",
            "content_sid": HX,
            "content_variables": {"1": "{body}", "2": "again"},
        },
        {"codes": [63024], "action": "fallback_sms", "from": SMS_FROM},
        {"codes": [21610, 30005], "action": "suppress"},
        {"codes": [30007], "action": "give_up"},
        {"codes": "*", "action": "retry", "delays": [60]},
    ],
}


def sms_conversations(sim: TwilioSimulator) -> list[str]:
    return [c.sid for c in sim.conversations.values() if c.unique_name]


# -- template ----------------------------------------------------------------------------------


def test_template_sends_content_and_rendered_variables_and_no_body(system: RetrySystem) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", body="Your code is 42")
    system.fail(conversation, original, 63016, status="failed")
    system.drain()
    [sent] = system.created(conversation)
    assert (sent["content_sid"], sent["body"]) == (HX, None)
    assert json.loads(sent["content_variables"]) == {"1": "Your code is 42", "2": "again"}
    assert marker(sent) == {
        "retry_of": original,
        "root": original,
        "attempt": 1,
        "content_variables": {"1": "Your code is 42", "2": "again"},  # for its own resend
    }
    assert system.attempts(original)[1]["new_message_sid"] == sent["sid"]


def test_template_variables_of_the_message_win(system: RetrySystem) -> None:
    system.load_retry(POLICY)
    own = {"redeliver": {"content_variables": {"2": "from the app"}}}
    conversation, original = system.message(channel="whatsapp", attributes=own)
    system.fail(conversation, original, 63016, status="failed")
    system.drain()
    [sent] = system.created(conversation)
    assert json.loads(sent["content_variables"]) == {
        "1": "Your code is 123456",
        "2": "from the app",
    }


# -- suppress ----------------------------------------------------------------------------------


def test_suppress_then_a_later_failure_to_that_address_gives_up_before_any_create(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(address=NEW_YORK)
    system.fail(conversation, original, 21610, status="failed")
    system.drain()
    assert system.attempts(original)[1]["reason"] == "suppressed"
    # another conversation, the same person on WhatsApp: one recipient, one suppression
    other, later = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(other, later, 30003)
    system.advance(60)
    system.drain()
    assert system.created() == []
    assert system.attempts(later)[1]["reason"] == "recipient_suppressed"
    assert not any(method == "POST" for method, _ in sim.requests)
    # the table keeps a hash, never the number
    items = system.dynamodb.scan(TableName=system.table)["Items"]
    assert "12125550100" not in json.dumps(items)
    [entry] = [i for i in items if i["pk"]["S"].startswith("SUPPRESS#")]
    assert entry["pk"]["S"] == "SUPPRESS#" + address_hash(NEW_YORK)
    expires = int(entry["expires_at"]["N"]) - int(entry["since"]["N"])
    assert expires == 30 * 86_400


def test_a_suppression_ends_after_suppress_days(system: RetrySystem) -> None:
    system.load_retry({**POLICY, "suppress_days": 1, "max_age_seconds": 2 * 86_400})
    conversation, original = system.message(address=NEW_YORK)
    system.fail(conversation, original, 30005, status="failed")
    system.drain()
    system.advance(86_400 + 1)
    # moto, like DynamoDB for up to days, has not deleted the expired item: the clock decides
    items = system.dynamodb.scan(TableName=system.table)["Items"]
    assert any(i["pk"]["S"].startswith("SUPPRESS#") for i in items)
    other, later = system.message(address=NEW_YORK)
    system.fail(other, later, 30003)
    system.drain()
    assert len(system.created(other)) == 1


# -- fallback_sms ------------------------------------------------------------------------------


def test_fallback_sms_builds_a_conversation_with_the_sms_participant_and_sends_there(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    system.drain()
    [sms] = sms_conversations(sim)
    assert sim.conversations[sms].unique_name == f"redeliver-sms-{original}-1-{SMS_FROM[1:]}"
    assert sim.service_of(sms) == sim.service_of(conversation)
    [participant] = sim.conversations[sms].participants
    assert participant["messaging_binding"] == {
        "type": "sms",
        "address": NEW_YORK,
        "proxy_address": SMS_FROM,
    }
    [sent] = system.created()
    assert sent["conversation_sid"] == sms
    assert sent["body"] == "Your code is 123456"
    assert marker(sent) == {"retry_of": original, "root": original, "attempt": 1, "channel": "sms"}
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", sent["sid"])


def test_an_sms_fallbacks_follow_up_asks_twilio_in_the_sms_conversation(
    system: RetrySystem, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # The follow-up asked in the failed (WhatsApp) conversation, where the SMS is not: a 404,
    # counted RetryUnconfirmed whatever happened to the SMS.
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    system.poll()  # the SMS goes out; its follow-up is queued (due at once in this harness)
    [sms] = sms_conversations(sim)
    [sent] = system.created()
    assert system.attempts(original)[1]["new_conversation_sid"] == sms
    sim.set_receipt(sent["sid"], "delivered")
    capsys.readouterr()
    system.drain()
    asked = [path for _, path in sim.requests if path.endswith("/Receipts")]
    assert asked
    assert all(f"/Conversations/{sms}/Messages/{sent['sid']}/" in p for p in asked)
    assert "RetryRecovered" in metric_names(capsys.readouterr().out)


def test_fallback_sms_reuses_the_conversation_that_has_the_pair(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    existing = sim.add_conversation(recipients=0, service=sim.service_of(conversation))
    gateway = system.retry.worker._twilio
    assert gateway.add_sms_participant("", existing, NEW_YORK, SMS_FROM)
    system.fail(conversation, original, 63024, status="failed")
    system.drain()
    assert sms_conversations(sim) == []  # none built
    [sent] = system.created()
    assert sent["conversation_sid"] == existing


def test_fallback_sms_to_a_recipient_not_on_whatsapp_is_a_retry(system: RetrySystem) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(address=NEW_YORK)  # SMS already
    system.fail(conversation, original, 63024, status="failed")
    system.drain()
    [sent] = system.created()
    assert sent["conversation_sid"] == conversation
    assert "channel" not in marker(sent)


@pytest.mark.parametrize(
    "step",
    ["create_conversation", "add_sms_participant", "create_message"],
)
def test_fallback_sms_is_exactly_once_when_the_worker_dies_after_each_step(
    system: RetrySystem, sim: TwilioSimulator, step: str
) -> None:
    """A crash after creating the conversation, after adding the participant, or after creating
    the message (before recording it): the next worker, once the claim is stale, finds what the
    first one built; one conversation and one message, recorded sent."""
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    gateway = system.retry.worker._twilio
    real = getattr(gateway, step)
    system.monkeypatch.setattr(gateway, step, after(real))
    assert system.poll(crash=True).crashed
    system.monkeypatch.setattr(gateway, step, real)
    system.advance(180)  # the claim is stale
    system.redeliver_now()
    system.drain()
    assert len(sms_conversations(sim)) == 1
    [sent] = system.created()
    assert sent["conversation_sid"] == sms_conversations(sim)[0]
    attempt = system.attempts(original)[1]
    assert (attempt["state"], attempt["new_message_sid"]) == ("sent", sent["sid"])


def test_fallback_sms_an_ambiguous_create_is_found_not_sent_again(
    system: RetrySystem, sim: TwilioSimulator
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(channel="whatsapp", address=NEW_YORK)
    system.fail(conversation, original, 63024, status="failed")
    sim.fail_next("POST", Fault.error_after(502))  # the conversation create: stored, then 502
    sim.fail_next("POST", Fault.error_after(502))
    sim.fail_next("POST", Fault.error_after(502))
    system.drain()
    system.advance(180)
    system.redeliver_now()
    system.drain()
    assert len(sms_conversations(sim)) == 1
    assert len(system.created()) == 1
    assert system.attempts(original)[1]["state"] == "sent"


# -- quiet hours, jitter, unmapped codes -------------------------------------------------------

QUIET = {**POLICY, "quiet_hours": {"start": "21:00", "end": "08:00", "default_timezone": "UTC"}}


def test_quiet_hours_hold_a_send_until_morning_in_the_recipients_zone(
    system: RetrySystem,
) -> None:
    system.load_retry(QUIET)
    ny_conversation, ny = system.message(address=NEW_YORK)  # 05:10 in New York
    la_conversation, la = system.message(address=LOS_ANGELES)  # 02:10 in Los Angeles
    uk_conversation, uk = system.message(address="+447911123456")  # 10:10 in London
    for conversation, message in ((ny_conversation, ny), (la_conversation, la)):
        system.fail(conversation, message, 30003)
    system.fail(uk_conversation, uk, 30003)
    system.advance(60)
    system.poll()  # the three are due: one goes, two wait for their morning
    assert [m["conversation_sid"] for m in system.created()] == [uk_conversation]
    dues = sorted(job["due_at"] for job in system.queued() if "event" in job)
    morning_ny = T0.replace(hour=13)  # 08:00 EST
    morning_la = T0.replace(hour=16)  # 08:00 PST
    assert dues == [int(morning_ny.timestamp()), int(morning_la.timestamp())]
    system.now = morning_ny + timedelta(seconds=1)
    system.poll()
    assert len(system.created(ny_conversation)) == 1
    assert system.created(la_conversation) == []


def test_every_wait_is_jittered_within_ten_percent(system: RetrySystem) -> None:
    system.load_retry(POLICY)
    system.retry.worker._timing.policy_jitter = stable_jitter
    for _ in range(5):
        system.fail(*system.message(), 30003, after=70)  # "*": 60 s from the failure
    assert system.poll().received == 5  # each decides to wait
    waits = [
        job["due_at"] - int((T0 + timedelta(seconds=70)).timestamp()) for job in system.queued()
    ]
    assert len(waits) == 5
    assert all(54 <= w <= 66 for w in waits)
    assert len(set(waits)) > 2
    # a jittered due is fractional: the job comes back at or after it, never a second early
    system.now = T0 + timedelta(seconds=70 + max(waits))
    assert system.poll().received == 5
    assert len(system.created()) == 5


def test_a_code_only_the_star_rule_matched_is_counted_and_logged(
    system: RetrySystem, capsys: pytest.CaptureFixture[str], worker_log: WorkerLog
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message()
    system.fail(conversation, original, 30009)
    system.poll()
    assert "UnmappedErrorCode" in metric_names(capsys.readouterr().out)  # the EMF metric
    [line] = [r for r in worker_log.records if "matched only the '*' rule" in r.getMessage()]
    assert line.levelname == "WARNING"
    worker_log.records.clear()
    mapped, other = system.message()
    system.fail(mapped, other, 30007, status="failed")
    system.poll()
    assert "UnmappedErrorCode" not in capsys.readouterr().out
    assert not [r for r in worker_log.records if "matched only" in r.getMessage()]
