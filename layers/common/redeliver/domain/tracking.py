"""Tracked messages: the `onMessageAdded` webhook of a message sent by the API or an SDK.

Pure domain. With TrackMessages, ingest records every outbound message as "sent, no receipt
yet", so that a message whose every delivery webhook is lost is still known, and reconciliation
asks Twilio about it (redeliver/usecases/reconcile.py).

Which messages: `Source` `API` or `SDK` (sent by an application). A message a participant sent
(SMS, WhatsApp: inbound) has no delivery receipts for us to retry and is not tracked
(`TrackedMessage.outbound` is False; ingest answers 200 and stores nothing).

Fields (TWILIO.md, ../shared/oai): `MessageSid` and `ConversationSid` are required (the table's
key, and where the Receipts API is asked); `DateCreated` is required (when the message was sent:
the reconciler's clock starts there); `ChatServiceSid` and `AccountSid` are optional (a malformed
one is dropped, as a receipt's is). `Author`, `Body`, `Attributes` and `Index` are never read:
no phone number or body is stored or logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from redeliver.domain.receipts import MalformedEvent, parse_time, sid_matches

MESSAGE_ADDED_EVENT_TYPE = "onMessageAdded"
TRACKED_SOURCES = frozenset({"API", "SDK"})


@dataclass(frozen=True, slots=True)
class TrackedMessage:
    message_sid: str
    conversation_sid: str
    date_created: datetime
    source: str
    chat_service_sid: str = ""  # empty: the account's default Conversation Service
    account_sid: str = ""

    @property
    def outbound(self) -> bool:
        return is_outbound(self.source)


def is_outbound(source: str) -> bool:
    """Sent by the API or an SDK: the messages whose receipts are worth tracking."""
    return source in TRACKED_SOURCES


def parse_message_added(form: Mapping[str, str]) -> TrackedMessage:
    """A TrackedMessage from the onMessageAdded form fields, or MalformedEvent naming why."""
    missing = [
        name for name in ("MessageSid", "ConversationSid", "DateCreated") if not form.get(name)
    ]
    if missing:
        raise MalformedEvent(f"missing field(s): {', '.join(missing)}")

    def sid(name: str, prefix: str) -> str:
        value = form[name]
        if not sid_matches(value, prefix):
            raise MalformedEvent(f"{name} is not a {prefix}… SID")
        return value

    def optional(name: str, prefix: str) -> str:
        value = form.get(name, "")
        return value if sid_matches(value, prefix) else ""

    return TrackedMessage(
        message_sid=sid("MessageSid", "IM"),
        conversation_sid=sid("ConversationSid", "CH"),
        date_created=parse_time(form["DateCreated"], "DateCreated"),
        source=form.get("Source", "")[:16],
        chat_service_sid=optional("ChatServiceSid", "IS"),
        account_sid=optional("AccountSid", "AC"),
    )
