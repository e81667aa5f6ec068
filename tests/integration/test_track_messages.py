"""TrackMessages: each message sent by the API or an SDK is recorded from its onMessageAdded, so a
message whose every delivery webhook is lost is still found by the reconciler and retried.

The template is deployed into moto with TrackMessages=true; ingest, reconcile and retry are the
real handlers, Twilio is the simulator.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from redeliver.adapters.dynamodb.table import STUCK_SINCE
from redeliver.adapters.dynamodb.tracked import TrackedMessages
from tests.integration.retry_system import T0, _iso
from tests.integration.test_reconcile import AFTER, Reconciling
from tests.lambdas import invoke, metric_names
from tools.apigw import http_api_event
from tools.samples import message_added_fields, receipt_fields
from tools.stack import TEST_AUTH_TOKEN, DeployedStack, deploy
from tools.twilio_sim.simulator import TwilioSimulator


@pytest.fixture
def tracking(aws: None) -> DeployedStack:
    return deploy(f"redeliver-{uuid.uuid4().hex[:8]}", {"TrackMessages": "true"})


@pytest.fixture
def rec(
    tracking: DeployedStack, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
) -> Reconciling:
    return Reconciling(tracking, sim, monkeypatch)


def added(rec: Reconciling, conversation: str, message: str, source: str = "API", **kw: Any) -> int:
    """The onMessageAdded webhook of the simulator's `message`, signed."""
    fields = message_added_fields(
        message=message, conversation=conversation, source=source, created=_iso(T0)
    )
    fields["ChatServiceSid"] = rec.sim.service_of(conversation)
    status: int = invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN, **kw))[
        "statusCode"
    ]
    return status


def test_an_outbound_message_is_tracked_with_one_write_and_a_duplicate_changes_nothing(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    calls: list[str] = []
    rec.ingest.ingest._tracked._db.meta.events.register(
        "before-call.*.*", lambda model, **_: calls.append(model.name)
    )
    capsys.readouterr()
    assert added(rec, conversation, message) == 200
    assert calls == ["UpdateItem"]  # one conditional write, no read
    assert metric_names(capsys.readouterr().out).count("TrackedMessages") == 1
    item = rec.item(message, "TRACKED")
    assert item is not None
    assert int(item[STUCK_SINCE]) == int(T0.timestamp())
    assert item["conversation_sid"] == conversation
    assert "status" not in item  # never mistaken for a receipt
    assert not {"Body", "body", "Author", "author"} & set(item)  # no body, no phone number

    assert added(rec, conversation, message) == 200  # Twilio's duplicate
    assert rec.item(message, "TRACKED") == item
    assert "TrackedMessages" not in metric_names(capsys.readouterr().out)


@pytest.mark.parametrize("source", ["SMS", "WhatsApp", ""])
def test_an_inbound_message_is_answered_and_not_stored(
    rec: Reconciling, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    capsys.readouterr()
    assert added(rec, conversation, message, source=source) == 200
    assert rec.item(message, "TRACKED") is None
    assert "UntrackedMessages" in metric_names(capsys.readouterr().out)


def test_an_unsigned_message_added_is_refused_and_leaves_no_trace(rec: Reconciling) -> None:
    conversation, message = rec.message()
    fields = message_added_fields(message=message, conversation=conversation)
    assert invoke(rec.ingest, http_api_event(fields, token=None))["statusCode"] == 403
    assert invoke(rec.ingest, http_api_event(fields, token="wrong"))["statusCode"] == 403
    assert rec.item(message, "TRACKED") is None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("MessageSid", "IM123", "MessageSid is not"),
        ("ConversationSid", "", "missing field(s): ConversationSid"),
        ("DateCreated", "yesterday", "DateCreated is not"),
    ],
)
def test_a_malformed_message_added_is_a_400_naming_why(
    rec: Reconciling, field: str, value: str, reason: str
) -> None:
    fields = message_added_fields(message="m", conversation="c")
    fields[field] = value
    answer = invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
    assert answer["statusCode"] == 400
    assert reason in answer["body"]


def test_a_failure_whose_every_receipt_webhook_was_lost_is_found_and_retried(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    assert added(rec, conversation, message) == 200
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    # ... and neither the `sent` nor the `undelivered` webhook ever comes.

    rec.now = T0 + timedelta(seconds=AFTER - 60)
    assert rec.run()["messages"] == 0
    assert rec.lookups() == 0

    rec.now = T0 + timedelta(seconds=AFTER + 60)
    capsys.readouterr()
    result = rec.run()
    assert (result["messages"], result["failures"], result["recorded"]) == (1, 1, 1)
    emitted = metric_names(capsys.readouterr().out)
    assert {"TrackedReconciled", "ReconciledFailures"} <= set(emitted)
    item = rec.item(message, "TRACKED")
    assert item is not None
    assert STUCK_SINCE not in item  # out of the index: not asked about again
    assert rec.receipt_item(message)["status"] == "undelivered"

    rec.drain()
    assert len(rec.created(conversation)) == 1  # retried, once

    rec.now += timedelta(seconds=AFTER * 2)
    lookups = rec.lookups()
    rec.run()
    assert rec.lookups() == lookups  # nothing tracked is left to ask about


def test_a_tracked_message_with_a_receipt_leaves_the_index_without_a_lookup(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    assert added(rec, conversation, message) == 200
    assert rec.receipt_webhook(conversation, message, "delivered") == 200

    rec.now = T0 + timedelta(seconds=AFTER + 60)
    capsys.readouterr()
    assert rec.run()["messages"] == 0
    assert rec.lookups() == 0  # one Query of the partition, no Twilio call
    assert "TrackedReceived" in metric_names(capsys.readouterr().out)
    assert STUCK_SINCE not in (rec.item(message, "TRACKED") or {STUCK_SINCE: 1})


def test_a_crash_after_recording_and_before_untracking_is_retried_once(
    rec: Reconciling, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation, message = rec.message()
    assert added(rec, conversation, message) == 200
    rec.sim.set_receipt(message, "failed", 30008, updated=T0 + timedelta(seconds=20))
    rec.now = T0 + timedelta(seconds=AFTER + 60)

    class Crash(Exception):
        pass

    def dies(self: TrackedMessages, message_sid: str) -> bool:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(TrackedMessages, "received", dies)
        with pytest.raises(Crash):
            rec.run()
    # The failure was recorded (and queued) before the crash.
    assert rec.receipt_item(message)["status"] == "failed"
    assert len(rec.queued()) == 1

    lookups = rec.lookups()
    rec.now += timedelta(seconds=AFTER)
    # The partition holds a receipt, but the lookup that recorded it was noted (begin_lookup): it
    # may have died between two of a group message's receipts, so Twilio is asked again (the
    # receipt recorded again is a duplicate: nothing queued twice), then the message is untracked.
    rec.run()
    assert rec.lookups() == lookups + 1
    assert STUCK_SINCE not in (rec.item(message, "TRACKED") or {})
    rec.drain()
    assert len(rec.created(conversation)) == 1


def test_a_receipt_webhook_arriving_during_the_lookup_is_one_event(
    rec: Reconciling, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation, message = rec.message()
    assert added(rec, conversation, message) == 200
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    checked = TrackedMessages.has_receipt

    def late_webhook(self: TrackedMessages, message_sid: str) -> bool:
        found = checked(self, message_sid)  # none yet ...
        # ... and the `undelivered` webhook lands right after the check.
        [receipt] = rec.sim.receipts[message]
        fields = receipt_fields(
            "undelivered",
            message=message,
            conversation=conversation,
            receipt=receipt["sid"],
            error_code=30003,
            created=_iso(T0),
            updated=_iso(T0 + timedelta(seconds=20)),
        )
        fields["ChatServiceSid"] = rec.sim.service_of(conversation)
        fields["ParticipantSid"] = rec.sim.participant_of(conversation)
        answer = invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
        assert answer["statusCode"] == 200
        return found

    monkeypatch.setattr(TrackedMessages, "has_receipt", late_webhook)
    result = rec.run()
    assert result["messages"] == 1
    assert result["failures"] == 0  # the webhook's write queued it; the same event again is not
    assert len(rec.queued()) == 1
    rec.drain()
    assert len(rec.created(conversation)) == 1


def test_with_track_messages_off_nothing_is_stored(
    stack: DeployedStack,
    sim: TwilioSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack.environment("IngestFunction")["TRACK_MESSAGES"] == "false"
    rec = Reconciling(stack, sim, monkeypatch)
    conversation, message = rec.message()
    capsys.readouterr()
    assert added(rec, conversation, message) == 200
    assert rec.item(message, "TRACKED") is None
    assert "UntrackedMessages" in metric_names(capsys.readouterr().out)


def test_track_messages_needs_reconciliation(aws: None) -> None:
    stack = deploy(
        f"redeliver-{uuid.uuid4().hex[:8]}",
        {"TrackMessages": "true", "ReconcileAfterMinutes": "0"},
    )
    assert stack.environment("IngestFunction")["TRACK_MESSAGES"] == "false"
