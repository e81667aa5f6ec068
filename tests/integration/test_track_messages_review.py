"""Adversarial review of TrackMessages' logic (issue 19): each test names a defect it proved.

The stack is deployed into moto with TrackMessages=true; ingest and reconcile are the real
handlers, Twilio is the simulator (as tests/integration/test_track_messages.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from redeliver.usecases.recorder import Recorder
from tests.integration.retry_system import T0
from tests.integration.test_reconcile import AFTER, Reconciling, cli_run
from tests.integration.test_track_messages import added, rec, tracking  # noqa: F401


def test_a_chat_only_message_is_not_asked_about_again_and_again(
    rec: Reconciling,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio makes no receipt for chat participants (TWILIO.md), so an SDK/API message in a
    conversation of chat identities only never gets one. Tracked, it is asked about
    ReconcileMaxLookups times (3 Twilio calls per chat message, on the account's REST
    concurrency the retry worker's sends share) and then logged as `a receipt stuck at sent is
    left alone` and counted ReconcileLeftAlone, though it never had a receipt. Fixed: after an
    empty answer, a conversation with no SMS/WhatsApp participant untracks it (one participants
    list)."""
    conversation = rec.sim.add_conversation(recipients=0, chat_participants=2)
    message = rec.sim.add_message(conversation, created=T0)
    assert not rec.sim.receipts.get(message)  # Twilio makes none
    assert added(rec, conversation, message, source="SDK") == 200

    capsys.readouterr()
    left_alone = 0
    for window in range(1, 5):
        rec.now = T0 + timedelta(seconds=window * (AFTER + 60))
        left_alone += rec.run()["left_alone"]
    out = capsys.readouterr().out
    assert rec.lookups() <= 1, f"{rec.lookups()} Receipts lookups for a chat-only message"
    assert left_alone == 0
    assert '"ReconcileLeftAlone":0' in out  # (emitted each run, at 0: none left alone)
    assert "sent_since" not in (rec.item(message, "TRACKED") or {})  # out of the index


def test_the_cli_reconciles_a_tracked_message_by_its_sid(
    rec: Reconciling,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`redeliver reconcile IM…` ("the morning after an outage") finds a message's conversation
    only from a receipt item: for the very message TrackMessages exists for (every receipt
    webhook lost) it answers `no receipt of IM… : its conversation is not known here`, though
    the TRACKED item in that partition names the conversation and its service. Fixed: the
    tracked item's conversation is asked about when no receipt is there."""
    conversation, message = rec.message()
    assert added(rec, conversation, message) == 200
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    capsys.readouterr()
    code, out = cli_run(capsys, rec, "reconcile", message)
    assert code == 0, out
    assert "recorded, queued for a retry" in out
    assert rec.receipt_item(message)["status"] == "undelivered"


def test_a_crash_between_two_receipts_of_a_group_message_loses_no_failure(
    rec: Reconciling,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A group message, every receipt webhook lost. The reconciler records what Twilio reports
    one receipt at a time; a crash (a throttled write raising, the function's timeout) after
    the first (`delivered`) and before the second (`undelivered`) leaves "a receipt in the
    partition", so the next run's has_receipt takes the tracked message out with no lookup:
    the second recipient's failure is never recorded, decided or counted. Fixed: the lookup is
    noted on the tracked item before it begins (TrackedMessages.begin_lookup), and a noted one
    is asked about again."""
    conversation = rec.sim.add_conversation(recipients=2)
    message = rec.sim.add_message(conversation, created=T0)
    assert len(rec.sim.receipts[message]) == 2
    rec.sim.set_receipt(message, "delivered", receipt=0, updated=T0 + timedelta(seconds=10))
    rec.sim.set_receipt(
        message, "undelivered", 30003, receipt=1, updated=T0 + timedelta(seconds=20)
    )
    assert added(rec, conversation, message) == 200
    rec.now = T0 + timedelta(seconds=AFTER + 60)

    class Crash(Exception):
        pass

    record = Recorder.record

    def throttled_on_the_failure(self: Recorder, event: Any, *args: Any, **kw: Any) -> Any:
        if event.status == "undelivered":
            raise Crash
        return record(self, event, *args, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(Recorder, "record", throttled_on_the_failure)
        with pytest.raises(Crash):
            rec.run()
    delivered = rec.sim.receipts[message][0]["sid"]
    assert (rec.item(message, f"RCPT#{delivered}") or {}).get("status") == "delivered"

    for window in range(2, 5):  # the failure is found by a later run
        rec.now = T0 + timedelta(seconds=window * (AFTER + 60))
        rec.run()
    failed = rec.sim.receipts[message][1]["sid"]
    item = rec.item(message, f"RCPT#{failed}")
    assert item is not None, "the second recipient's failure was never recorded"
    assert item["status"] == "undelivered"
