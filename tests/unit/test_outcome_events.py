"""The outcome event of a decision: its detail is an allow-list of strings, its id is stable."""

from __future__ import annotations

import pytest

from redeliver.domain.outcome_events import (
    DETAIL_FIELDS,
    DetailType,
    UnsafeDetail,
    build,
    event_id,
)

ROOT = "IM" + "a" * 32


def test_the_id_is_the_same_for_the_same_decision_and_differs_for_another() -> None:
    one = build(DetailType.GAVE_UP, root=ROOT, attempt=2, message_sid=ROOT, reason="max_age")
    again = build(DetailType.GAVE_UP, root=ROOT, attempt=2, message_sid=ROOT, reason="max_age")
    assert one.event_id == again.event_id == event_id(ROOT, 2, DetailType.GAVE_UP, "max_age")
    others = [
        build(DetailType.GAVE_UP, root=ROOT, attempt=3, message_sid=ROOT, reason="max_age"),
        build(DetailType.GAVE_UP, root=ROOT, attempt=2, message_sid=ROOT, reason="suppressed"),
        build(DetailType.RECIPIENT_SUPPRESSED, root=ROOT, attempt=2, message_sid=ROOT),
        build(DetailType.RETRY_SENT, root=ROOT, attempt=2, message_sid=ROOT),
    ]
    assert one.event_id not in {o.event_id for o in others}
    assert len({o.event_id for o in others}) == 4


def test_a_sent_retry_s_id_does_not_depend_on_its_way_or_new_message() -> None:
    """A stale claim's search records the same attempt again, maybe without its way: one id."""
    a = build(DetailType.RETRY_SENT, root=ROOT, attempt=1, message_sid=ROOT, action="retry")
    b = build(DetailType.RETRY_SENT, root=ROOT, attempt=1, message_sid=ROOT, new_message_sid="x")
    assert a.event_id == b.event_id


def test_the_detail_holds_the_allow_list_only_every_value_a_string() -> None:
    event = build(
        DetailType.RETRY_SENT,
        root=ROOT,
        attempt=1,
        message_sid=ROOT,
        error_code=30003,
        action="template",
    )
    assert tuple(event.detail) == DETAIL_FIELDS
    assert all(isinstance(v, str) for v in event.detail.values())
    assert (event.detail["attempt"], event.detail["error_code"]) == ("1", "30003")
    assert (
        build(DetailType.GAVE_UP, root=ROOT, attempt=1, message_sid=ROOT).detail["error_code"] == ""
    )


@pytest.mark.parametrize("value", ["+12125550100", "to 12125550100", "whatsapp:+447700900123"])
def test_a_number_in_a_free_text_field_is_refused(value: str) -> None:
    with pytest.raises(UnsafeDetail):
        build(DetailType.GAVE_UP, root=ROOT, attempt=1, message_sid=ROOT, reason=value)
    with pytest.raises(UnsafeDetail):
        build(DetailType.RETRY_SENT, root=ROOT, attempt=1, message_sid=ROOT, action=value)


def test_reasons_the_worker_gives_are_accepted() -> None:
    for reason in ("twilio_rejected_21610", "twilio_rejected_400", "recipient_suppressed"):
        build(DetailType.GAVE_UP, root=ROOT, attempt=1, message_sid=ROOT, reason=reason)
