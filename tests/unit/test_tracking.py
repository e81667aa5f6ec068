"""The onMessageAdded parser (TrackMessages), without AWS."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from redeliver.domain.receipts import MalformedEvent
from redeliver.domain.tracking import TRACKED_SOURCES, TrackedMessage, parse_message_added
from redeliver.settings import Settings
from tools.samples import message_added_fields, sid


def test_an_outbound_message_is_parsed_without_its_body_or_author() -> None:
    message = parse_message_added(message_added_fields(message="m", conversation="c"))
    assert message == TrackedMessage(
        message_sid=sid("IM", "m"),
        conversation_sid=sid("CH", "c"),
        date_created=datetime(2026, 11, 27, 9, 59, 58, tzinfo=UTC),
        source="API",
        chat_service_sid=sid("IS", "service"),
        account_sid=sid("AC", "account"),
    )
    assert message.outbound
    assert "Your code" not in repr(message)


@pytest.mark.parametrize(
    ("source", "outbound"), [("API", True), ("SDK", True), ("SMS", False), ("WhatsApp", False)]
)
def test_only_api_and_sdk_messages_are_outbound(source: str, outbound: bool) -> None:
    assert parse_message_added(message_added_fields(source=source)).outbound is outbound
    assert (source in TRACKED_SOURCES) is outbound


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("MessageSid", "", "missing field(s): MessageSid"),
        ("MessageSid", "IM12", "MessageSid is not a IM… SID"),
        ("ConversationSid", "IS" + "0" * 32, "ConversationSid is not a CH… SID"),
        ("DateCreated", "", "missing field(s): DateCreated"),
        ("DateCreated", "2026-11-27T09:59:58", "DateCreated has no time zone"),
    ],
)
def test_a_malformed_required_field_is_refused_naming_it(
    field: str, value: str, reason: str
) -> None:
    fields = message_added_fields()
    fields[field] = value
    with pytest.raises(MalformedEvent, match=re.escape(reason)):
        parse_message_added(fields)


def test_a_malformed_optional_sid_is_dropped_not_refused() -> None:
    fields = {**message_added_fields(), "ChatServiceSid": "IS1", "AccountSid": "nope"}
    message = parse_message_added(fields)
    assert (message.chat_service_sid, message.account_sid) == ("", "")


def test_track_messages_is_read_from_the_environment() -> None:
    base = {"TABLE_NAME": "t", "RETRY_QUEUE_URL": "q", "TWILIO_SECRET_ARN": "s"}
    assert not Settings.from_env(base).track_messages
    assert Settings.from_env({**base, "TRACK_MESSAGES": "true"}).track_messages
