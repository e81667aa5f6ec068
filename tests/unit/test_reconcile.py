"""The pure parts of reconciliation and spill (no AWS, no Twilio)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redeliver.adapters.sqs.spill import parse_spilled, spilled_body
from redeliver.adapters.twilio.snapshots import ReceiptSnapshot
from redeliver.domain.receipts import (
    Change,
    DeliveryEvent,
    MalformedEvent,
    apply,
    parse_delivery_event,
)
from redeliver.settings import Settings
from redeliver.usecases.reconcile import Target, event_from_snapshot
from tools.samples import receipt_fields, sid

TARGET = Target(sid("IM", 1), sid("CH", 1), sid("IS", "service"))
AT = datetime(2026, 11, 27, 10, 0, 5, 123000, tzinfo=UTC)


def snapshot(**changes: object) -> ReceiptSnapshot:
    fields: dict[str, object] = {
        "sid": sid("DY", 1),
        "status": "undelivered",
        "error_code": 30003,
        "date_updated": AT,
        "date_created": datetime(2026, 11, 27, 9, 59, 58, tzinfo=UTC),
        "participant_sid": sid("MB", 1),
        "channel_message_sid": sid("SM", "1-1"),
    }
    fields.update(changes)
    return ReceiptSnapshot(**fields)  # type: ignore[arg-type]


def test_a_receipts_api_receipt_is_the_event_its_webhook_would_have_carried() -> None:
    webhook = parse_delivery_event(
        {
            **receipt_fields("undelivered", error_code=30003, updated="2026-11-27T10:00:05.123Z"),
            "AccountSid": "",  # the Receipts API's receipt names no account: not stored
        }
    )
    assert event_from_snapshot(TARGET, snapshot()) == webhook
    assert event_from_snapshot(TARGET, snapshot()).order_key == webhook.order_key


def test_a_receipt_without_dates_or_with_a_bad_sid_is_not_recorded() -> None:
    with pytest.raises(MalformedEvent):
        event_from_snapshot(TARGET, snapshot(date_updated=None, date_created=None))
    with pytest.raises(MalformedEvent):
        event_from_snapshot(TARGET, snapshot(sid="DY123"))
    no_update = event_from_snapshot(TARGET, snapshot(date_updated=None))
    assert no_update.date_updated == no_update.date_created


def test_a_spilled_event_comes_back_as_it_went() -> None:
    event = parse_delivery_event(receipt_fields("failed", error_code=63016))
    assert parse_spilled(spilled_body(event)) == event
    for bad in ("not json", '{"v": 1, "event": {}}', '{"v": 2, "kind": "spilled_receipt"}'):
        with pytest.raises(MalformedEvent):
            parse_spilled(bad)


def test_reconcile_settings_default_on_and_zero_is_off() -> None:
    required = {"TABLE_NAME": "t", "RETRY_QUEUE_URL": "q", "TWILIO_SECRET_ARN": "s"}
    settings = Settings.from_env(required)
    assert (settings.reconcile_after_minutes, settings.reconcile_max_lookups) == (30, 3)
    assert settings.spill_queue_url == ""
    off = Settings.from_env({**required, "RECONCILE_AFTER_MINUTES": "0", "SPILL_QUEUE_URL": "u"})
    assert (off.reconcile_after_minutes, off.spill_queue_url) == (0, "u")


def test_twilios_whole_second_and_a_millisecond_webhook_are_ordered_alike() -> None:
    """A webhook's DateUpdated may have milliseconds, Twilio's REST dates are whole seconds:
    receipts are ordered to the second, the status rank deciding within it."""

    def webhook(status: str, updated: str) -> DeliveryEvent:
        return parse_delivery_event(receipt_fields(status, error_code=None, updated=updated))

    stored, _ = apply(None, webhook("sent", "2026-11-27T10:00:05.300Z"))
    failed = event_from_snapshot(TARGET, snapshot(date_updated=AT.replace(microsecond=0)))
    assert apply(stored, failed)[1].change is Change.LATEST  # rank decides
    delivered, _ = apply(None, webhook("delivered", "2026-11-27T10:00:05.900Z"))
    assert apply(delivered, failed)[1].change is Change.OLDER
    same, _ = apply(None, webhook("undelivered", "2026-11-27T10:00:05.700Z"))
    assert apply(same, failed)[1].change is Change.DUPLICATE
    earlier, _ = apply(None, webhook("sent", "2026-11-27T10:00:04.300Z"))
    assert apply(earlier, failed)[1].change is Change.LATEST
