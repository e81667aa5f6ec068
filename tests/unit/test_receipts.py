"""The receipt event parser and state machine (DESIGN invariants 2 and 3), without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redeliver.domain.receipts import (
    EARLIEST_DATE,
    LATEST_DATE,
    NO_STATUS,
    OPTIONAL_FIELDS,
    Change,
    DeliveryEvent,
    MalformedEvent,
    apply,
    classify,
    iso,
    parse_delivery_event,
    parse_receipt,
)
from tests.unit.dates import date_texts
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
        ("DateCreated", "9999-12-31T23:59:59-01:00", "DateCreated is out of range"),
        # `$` also matches before a final newline: a SID with one would reach keys and URLs.
        ("MessageSid", "IM" + "a" * 32 + "\n", "MessageSid is not a IM"),
        ("Status", "failed\n", "Status is not a delivery status"),
        ("ErrorCode", "30003\n", "ErrorCode is not an integer"),
        ("ErrorCode", "30003x", "ErrorCode is not an integer"),  # on a failure: it picks the rule
    ],
)
def test_malformed_field_is_named(name: str, value: str, complaint: str) -> None:
    fields = receipt_fields("failed", error_code=30003)
    fields[name] = value
    with pytest.raises(MalformedEvent, match=complaint):
        parse_delivery_event(fields)


# -- dates: anything later steps cannot represent is refused here ------------------------------


@pytest.mark.parametrize("name", ["DateUpdated", "DateCreated"])
@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-01:00",  # past datetime.max once in UTC: OverflowError before
        "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC: OverflowError before
        "9999-12-31T23:59:59Z",  # representable, but no room left for a retry's delay
        "9999-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",  # a negative epoch-millisecond order key
        "1969-12-31T23:59:59.999Z",
    ],
)
def test_a_date_that_cannot_be_represented_is_malformed_naming_the_field(
    name: str, value: str
) -> None:
    fields = receipt_fields("failed", error_code=30003)
    fields[name] = value
    with pytest.raises(MalformedEvent, match=f"{name} is out of range"):
        parse_delivery_event(fields)


@pytest.mark.parametrize(
    "value", ["1970-01-01T00:00:00Z", "9998-12-31T23:59:59.999Z", "9999-01-01T00:59:59+01:00"]
)
def test_the_edges_of_the_range_are_dates_like_any_other(value: str) -> None:
    parsed = event("failed", value, 30003)
    assert EARLIEST_DATE <= parsed.date_updated < LATEST_DATE
    assert DeliveryEvent.from_dict(parsed.to_dict()) == parsed


def test_the_order_key_is_exact_whole_seconds_at_every_date() -> None:
    # A float timestamp puts 3075-01-05T17:18:24.269 one millisecond early (…268.99999), and at
    # a second boundary that would be another second.
    late = event("sent", "3075-01-05T17:18:24.269Z")
    millis = (late.date_updated - EARLIEST_DATE) // timedelta(milliseconds=1)
    assert millis % 1000 == 269
    assert late.order_key == (millis - 269) * 10 + 1
    assert event("sent", "1970-01-01T00:00:00.001Z").order_key == 1
    assert event("sent", "1970-01-01T00:00:01.000Z").order_key == 10_001


def test_twilios_whole_second_answer_and_a_millisecond_webhook_agree() -> None:
    # The Receipts API (reconciliation, follow-ups) says "2026-11-27T10:00:00Z"; the webhook for
    # the same change may say "…10:00:00.734Z". A failure learned from the API in the second of
    # a stored `sent` must be newer than it, and the same event from both paths one event.
    sent_by_webhook = event("sent", "2026-11-27T10:00:00.734Z")
    failed_by_api = event("failed", "2026-11-27T10:00:00Z", 30003)
    assert failed_by_api.order_key > sent_by_webhook.order_key
    failed_by_webhook = event("failed", "2026-11-27T10:00:00.912Z", 30003)
    assert failed_by_api.order_key == failed_by_webhook.order_key


def test_dates_keep_the_milliseconds_that_are_stored() -> None:
    # Sub-millisecond digits are dropped at parse time, so the event that travels (SQS, table)
    # is the event that was parsed.
    parsed = event("failed", "2026-11-27T10:00:00.000999+01:00", 30003)
    assert parsed.date_updated == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert DeliveryEvent.from_dict(parsed.to_dict()) == parsed


@given(updated=date_texts(), created=date_texts())
def test_any_date_text_parses_into_an_event_that_survives_every_step_or_is_named(
    updated: str, created: str
) -> None:
    fields = receipt_fields("failed", error_code=30003, updated=updated, created=created)
    try:
        parsed = parse_delivery_event(fields)
    except MalformedEvent as error:
        reason = str(error)
        assert "DateUpdated" in reason or "DateCreated" in reason
        return
    for moment in (parsed.date_updated, parsed.date_created):
        assert EARLIEST_DATE <= moment < LATEST_DATE
        assert moment.tzinfo is UTC
    assert 0 <= parsed.order_key < 10**38  # a DynamoDB Number holds 38 digits
    assert DeliveryEvent.from_dict(parsed.to_dict()) == parsed
    assert len(iso(parsed.date_updated)) == len("2026-11-27T10:00:00.000Z")  # sorts as text
    state, transition = apply(None, parsed)
    assert transition.enqueue
    assert apply(state, parsed)[1].change is Change.DUPLICATE


# -- optional fields: never the reason a receipt is lost ----------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "SM" + "a" * 32,
        "WA" + "0123456789abcdef" * 2,
        "MM" + "ABCDEF0123456789" * 2,
        "wa" + "f" * 32,  # the spec's pattern: ^[a-zA-Z]{2}[0-9a-fA-F]{32}$
        "Xy" + "0" * 32,
    ],
)
def test_any_channel_message_sid_the_spec_allows_is_kept(value: str) -> None:
    fields = receipt_fields("sent")
    fields["ChannelMessageSid"] = value
    parsed = parse_receipt(fields)
    assert parsed.event.channel_message_sid == value
    assert parsed.dropped == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ChannelMessageSid", "not a sid"),
        ("ChannelMessageSid", "SM" + "z" * 32),  # the old pattern let non-hex through
        ("ChannelMessageSid", "S1" + "a" * 32),
        ("AccountSid", "AC1"),
        ("ChatServiceSid", "IS" + "g" * 32),
        ("ParticipantSid", "MB../../x"),
        ("ChannelMessageSid", "SM" + "a" * 32 + "\n"),
    ],
)
def test_an_optional_field_that_does_not_parse_is_dropped_not_fatal(name: str, value: str) -> None:
    fields = receipt_fields("failed", error_code=30003)
    fields[name] = value
    parsed = parse_receipt(fields)
    assert parsed.dropped == (name,)
    assert parsed.event == parse_delivery_event({**fields, name: ""})
    assert parsed.event.is_failure


def test_an_error_code_that_does_not_parse_is_dropped_when_it_decides_nothing() -> None:
    # On a delivery it picks no rule, and refusing the receipt would lose the `delivered` that
    # stops a resend.
    fields = receipt_fields("delivered")
    fields["ErrorCode"] = "thirty"
    parsed = parse_receipt(fields)
    assert parsed.dropped == ("ErrorCode",)
    assert parsed.event.error_code is None
    assert parsed.event.status == "delivered"


SID_ATTRIBUTES = {
    "AccountSid": "account_sid",
    "ChatServiceSid": "chat_service_sid",
    "ParticipantSid": "participant_sid",
    "ChannelMessageSid": "channel_message_sid",
}


@given(
    st.fixed_dictionaries({name: st.text(max_size=40) for name in SID_ATTRIBUTES}),
    st.text(max_size=12),
)
def test_no_text_in_an_optional_field_rejects_a_receipt(
    sids: dict[str, str], error_code: str
) -> None:
    assert set(OPTIONAL_FIELDS) == {*SID_ATTRIBUTES, "ErrorCode"}
    fields = {**receipt_fields("delivered"), **sids, "ErrorCode": error_code}
    parsed = parse_receipt(fields)
    for name, attribute in SID_ATTRIBUTES.items():
        kept = getattr(parsed.event, attribute)
        assert kept in ("", sids[name])
        assert (name in parsed.dropped) == (kept == "" and sids[name] != "")
    assert (parsed.event.error_code is None) or str(parsed.event.error_code) == error_code.strip()


def test_unknown_future_status_is_kept_as_is() -> None:
    parsed = event("queued_for_carrier")
    assert parsed.status == "queued_for_carrier"
    assert not parsed.is_failure
    assert not parsed.is_known_status


def test_a_status_the_spec_does_not_name_is_history_only_never_the_receipts_status() -> None:
    """Neither a success (it would end a failure's retry and its outbox mark) nor a failure."""
    state, first = apply(None, event("queued_for_carrier", "2026-11-27T10:00:00Z"))
    assert (first.change, first.enqueue, state.status) == (Change.UNKNOWN, False, NO_STATUS)
    state, failed = apply(state, event("failed", "2026-11-27T10:00:01Z", 30008))
    assert (failed.change, failed.enqueue) == (Change.NEW, True)
    state, later = apply(state, event("exploded", "2026-11-27T10:00:09Z"))
    assert (later.change, later.enqueue, state.status) == (Change.UNKNOWN, False, "failed")
    assert set(state.history) == {"queued_for_carrier", "failed", "exploded"}
    assert apply(state, event("exploded", "2026-11-27T10:00:09Z"))[1].change is Change.DUPLICATE


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
    # The latest status the spec names is the receipt's; one it does not name never is.
    known = [e for e in in_order if e.is_known_status]
    latest = max(known, key=lambda e: (e.order_key, e.status)).status if known else NO_STATUS
    assert state.status == latest
    # Every distinct status seen is in the bounded history, once.
    assert set(state.history) == {e.status for e in in_order}
