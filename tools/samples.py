"""Sample data shaped like Twilio's: SIDs and onDeliveryUpdated form fields."""

from __future__ import annotations

import hashlib


def sid(prefix: str, seed: object = 0) -> str:
    """A deterministic, well-formed Twilio SID (`prefix` + 32 hex digits); a SID passes through."""
    if isinstance(seed, str) and seed.startswith(prefix) and len(seed) == 34:
        return seed
    return prefix + hashlib.md5(f"{prefix}{seed}".encode(), usedforsecurity=False).hexdigest()


def _message_fields(message: object, conversation: object) -> dict[str, str]:
    """What every Conversations webhook about a message names: account, service, conversation,
    message."""
    return {
        "AccountSid": sid("AC", "account"),
        "ChatServiceSid": sid("IS", "service"),
        "ConversationSid": sid("CH", conversation),
        "MessageSid": sid("IM", message),
    }


def receipt_fields(
    status: str = "sent",
    *,
    message: object = 1,
    receipt: object = 1,
    conversation: object = 1,
    error_code: int | None = None,
    updated: str = "2026-11-27T10:00:00Z",
    created: str = "2026-11-27T09:59:58Z",
) -> dict[str, str]:
    """The form fields of one onDeliveryUpdated webhook."""
    return {
        **_message_fields(message, conversation),
        "DeliveryReceiptSid": sid("DY", receipt),
        "ChannelMessageSid": sid("SM", f"{message}-{receipt}"),
        "ParticipantSid": sid("MB", receipt),
        "EventType": "onDeliveryUpdated",
        "Status": status,
        "ErrorCode": "" if error_code is None else str(error_code),
        "DateCreated": created,
        "DateUpdated": updated,
        "Source": "API",
        "ClientIdentity": "",
    }


def message_added_fields(
    *,
    message: object = 1,
    conversation: object = 1,
    source: str = "API",
    created: str = "2026-11-27T09:59:58Z",
) -> dict[str, str]:
    """The form fields of one onMessageAdded webhook (TrackMessages), as for a sent message."""
    return {
        **_message_fields(message, conversation),
        "EventType": "onMessageAdded",
        "Index": "0",
        "Author": "system",
        "Body": "Your code is 123456",
        "Attributes": "{}",
        "DateCreated": created,
        "Source": source,
        "ClientIdentity": "",
    }
