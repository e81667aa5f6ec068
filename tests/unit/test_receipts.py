"""The receipt event parser and state machine (DESIGN invariants 2 and 3), without AWS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redeliver.receipts import (
    Change,
    DeliveryEvent,
    MalformedEvent,
    apply,
    classify,
    parse_delivery_event,
)
from tools.samples import receipt_fields


def event(
    status: str = "sent",
    updated: str = "2026-11-27T10:00:00Z",
    code: int | None = None,
) -> DeliveryEvent:
    return parse_delivery_event(receipt_fields(status, updated=updated, error_code=code))


# -- parsing ------------------------------------------------------------------------------------


def test_parses_every_field_of_a_failure() -> None:
    parsed = event("undelivered", code=30003)
    assert parsed.status == "undelivered"
    assert parsed.error_code == 30003
    assert parsed.is_failure
    assert parsed.date_updated == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert parsed.message_sid.startswith("IM")
    assert parsed.channel_message_sid.startswith("SM")


@pytest.mark.parametrize("blank", ["", "0", "null"])
def test_blank_error_code_means_no_error(blank: str) -> None:
    fields = receipt_fields("delivered")
    fields["ErrorCode"] = blank
    assert parse_delivery_event(fields).error_code is None


def test_absent_optional_fields_are_tolerated() -> None:
    fields = receipt_fields("sent")
    for name in (
        "AccountSid",
        "ChatServiceSid",
        "ChannelMessageSid",
        "ParticipantSid",
        "ErrorCode",
        "DateCreated",
        "EventType",
    ):
        del fields[name]
    parsed = parse_delivery_event(fields)
    assert parsed.date_created == parsed.date_updated
    assert parsed.error_code is None


@pytest.mark.parametrize("name", ["MessageSid", "DeliveryReceiptSid", "ConversationSid", "Status"])
def test_missing_required_field_is_named(name: str) -> None:
    fields = receipt_fields()
    del fields[name]
    with pytest.raises(MalformedEvent, match=name):
        parse_delivery_event(fields)


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("DateUpdated", "yesterday", "DateUpdated is not an ISO 8601 date"),
        ("DateUpdated", "2026-11-27T10:00:00", "DateUpdated has no time zone"),
        ("DateCreated", "27/11/2026", "DateCreated is not an ISO 8601 date"),
        ("ErrorCode", "thirty", "ErrorCode is not an integer"),
        ("ErrorCode", "-4", "ErrorCode out of range"),
        ("MessageSid", "SM123", "MessageSid is not a IM"),
        ("DeliveryReceiptSid", "DY" + "z" * 32, "DeliveryReceiptSid is not a DY"),
        ("ConversationSid", "CH../../etc", "ConversationSid is not a CH"),
        ("Status", "Delivered; DROP", "Status is not a delivery status"),
        ("ChannelMessageSid", "not a sid", "ChannelMessageSid is not a SID"),
        ("AccountSid", "AC1", "AccountSid is not a AC"),
    ],
)
def test_malformed_field_is_named(name: str, value: str, complaint: str) -> None:
    fields = receipt_fields()
    fields[name] = value
    with pytest.raises(MalformedEvent, match=complaint):
        parse_delivery_event(fields)


def test_unknown_future_status_is_kept_as_is() -> None:
    parsed = event("queued_for_carrier")
    assert parsed.status == "queued_for_carrier"
    assert not parsed.is_failure
    assert not parsed.is_known_status


def test_event_round_trips_through_its_dict() -> None:
    original = event("failed", code=30005)
    assert DeliveryEvent.from_dict(original.to_dict()) == original


def test_from_dict_rejects_what_to_dict_never_writes() -> None:
    with pytest.raises(MalformedEvent):
        DeliveryEvent.from_dict({"message_sid": "IM1"})


# -- ordering -----------------------------------------------------------------------------------


def test_later_date_wins_whatever_the_status() -> None:
    delivered = event("delivered", "2026-11-27T10:00:01Z")
    sent_late = event("sent", "2026-11-27T10:00:00Z")
    state, _ = apply(None, delivered)
    state, transition = apply(state, sent_late)
    assert transition.change is Change.OLDER
    assert state.status == "delivered"
    assert set(state.history) == {"delivered", "sent"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("sent", "delivered"),
        ("delivered", "read"),
        ("sent", "failed"),
        ("undelivered", "failed"),
        ("failed", "delivered"),
        ("unknown_status", "sent"),
    ],
)
def test_at_equal_dates_the_later_stage_wins(first: str, second: str) -> None:
    for order in ((first, second), (second, first)):
        state = None
        for status in order:
            state, _ = apply(state, event(status))
        assert state is not None
        assert state.status == second


def test_same_event_twice_is_a_duplicate_that_enqueues_nothing() -> None:
    failed = event("failed", code=30005)
    state, first = apply(None, failed)
    again, second = apply(state, failed)
    assert first.enqueue
    assert second.change is Change.DUPLICATE
    assert not second.enqueue
    assert again == state


def test_a_failure_enqueues_only_when_it_becomes_the_latest() -> None:
    state, _ = apply(None, event("sent", "2026-11-27T10:00:00Z"))
    state, fail = apply(state, event("undelivered", "2026-11-27T10:00:05Z", 30003))
    assert fail.change is Change.LATEST
    assert fail.enqueue
    assert fail.previous_status == "sent"
    # A late, older failure after a delivery changes nothing and enqueues nothing.
    state, _ = apply(state, event("delivered", "2026-11-27T10:01:00Z"))
    _, late = apply(state, event("failed", "2026-11-27T10:00:30Z", 30008))
    assert late.change is Change.OLDER
    assert not late.enqueue


def test_a_newer_failure_after_a_failure_enqueues_again() -> None:
    # The worker decides on the newest truth; it claims attempts per message, so no double send.
    state, _ = apply(None, event("undelivered", "2026-11-27T10:00:00Z", 30003))
    _, transition = apply(state, event("failed", "2026-11-27T10:00:09Z", 30005))
    assert transition.enqueue


def test_classify_never_seen() -> None:
    transition = classify(None, event("read"))
    assert transition.change is Change.NEW
    assert transition.previous_status is None


# -- any order, any duplication, same end (DESIGN invariants 2 and 3) --------------------------

STATUSES = ["sent", "delivered", "read", "undelivered", "failed", "queued_for_carrier", "zz"]
SECONDS = st.integers(min_value=0, max_value=4)


@st.composite
def receipt_histories(draw: st.DrawFn) -> tuple[list[DeliveryEvent], list[DeliveryEvent]]:
    """Distinct events of one receipt, and the same events shuffled with duplicates."""
    pairs = draw(st.sets(st.tuples(st.sampled_from(STATUSES), SECONDS), min_size=1, max_size=7))
    events = [
        event(
            status,
            f"2026-11-27T10:00:0{second}Z",
            30003 if status in ("undelivered", "failed") else None,
        )
        for status, second in sorted(pairs)
    ]
    shuffled = draw(st.permutations(events))
    extra = draw(st.lists(st.sampled_from(events), max_size=6))
    mixed = list(shuffled)
    for index, duplicate in enumerate(extra):
        mixed.insert(draw(st.integers(0, len(mixed))) if index % 2 else len(mixed), duplicate)
    return events, mixed


@given(receipt_histories())
def test_any_order_and_duplication_ends_in_the_same_state(
    history: tuple[list[DeliveryEvent], list[DeliveryEvent]],
) -> None:
    in_order, mixed = history
    expected = None
    for item in sorted(in_order, key=lambda e: (e.order_key, e.status)):
        expected, _ = apply(expected, item)
    state = None
    for item in mixed:
        state, _ = apply(state, item)
    assert state == expected
    assert state is not None
    latest = max(in_order, key=lambda e: (e.order_key, e.status))
    assert state.status == latest.status
    # Every distinct status seen is in the bounded history, once.
    assert set(state.history) == {e.status for e in in_order}
