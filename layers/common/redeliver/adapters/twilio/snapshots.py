"""Twilio adapter: what twilio-python's resources are read into, values the use cases hold.

A message becomes the domain's `MessageSnapshot` (redeliver.domain.chain), a delivery receipt a
`ReceiptSnapshot`, a participant a `Participant`. Dates are in UTC; Twilio's error code 0 ("no
error") is None; a chat participant (an identity, no messaging binding) has no address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redeliver.domain.chain import MessageSnapshot, parse_attributes


@dataclass(frozen=True, slots=True)
class ReceiptSnapshot:
    """One delivery receipt as Twilio's Receipts resource shows it: its latest status only."""

    sid: str
    status: str
    error_code: int | None  # None: no error (Twilio answers 0)
    date_updated: datetime | None
    date_created: datetime | None
    participant_sid: str | None
    channel_message_sid: str | None


@dataclass(frozen=True, slots=True)
class Participant:
    sid: str
    address: str | None  # its messaging binding's address; None for a chat identity


def binding_address(binding: object) -> str | None:
    address = binding.get("address") if isinstance(binding, Mapping) else None
    return str(address) if address else None


def message_snapshot(message: Any) -> MessageSnapshot:
    created = message.date_created
    return MessageSnapshot(
        sid=str(message.sid),
        conversation_sid=str(message.conversation_sid),
        author=message.author,
        body=message.body,
        attributes=parse_attributes(message.attributes),
        media_sids=[str(m["sid"]) for m in (message.media or []) if isinstance(m, Mapping)],
        content_sid=getattr(message, "content_sid", None) or None,
        date_created=created.astimezone(UTC) if isinstance(created, datetime) else None,
    )


def receipt_snapshot(receipt: Any) -> ReceiptSnapshot:
    def moment(value: Any) -> datetime | None:
        return value.astimezone(UTC) if isinstance(value, datetime) else None

    def optional(value: Any) -> str | None:
        return str(value) if value else None

    code = receipt.error_code
    return ReceiptSnapshot(
        sid=str(receipt.sid),
        status=str(receipt.status),
        error_code=int(code) if isinstance(code, int) and code else None,
        date_updated=moment(receipt.date_updated),
        date_created=moment(receipt.date_created),
        participant_sid=optional(receipt.participant_sid),
        channel_message_sid=optional(receipt.channel_message_sid),
    )
