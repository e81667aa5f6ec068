"""Outcome events: each decision the retry worker records, as an EventBridge event (DESIGN,
"Outcome events").

Pure: what an event says, never how it travels. The adapter (adapters/dynamodb/outcome_events.py)
writes it as an item in the same transaction that records its decision; the stack's pipe
(template.yaml, OutcomeEventsPipe) publishes every new such item to the bus. So an event exists
exactly when its decision does, and a worker dying right after the record loses nothing.

| detail-type            | when                                                            |
|------------------------|-----------------------------------------------------------------|
| `Retry Sent`           | a new message went out for an attempt (action: its way)         |
| `Retry Recovered`      | the follow-up found a retry delivered or read                   |
| `Gave Up`              | an attempt was given up (reason: why)                           |
| `Recipient Suppressed` | the recipient was added to the suppression list (with a give-up)|

`detail` holds only the fields in `DETAIL_FIELDS`, every value a string (the pipe's input template
quotes each attribute): SIDs, the root, the attempt, the error code, the action, the reason, and
`event_id`. Never a phone number or a body: nothing here takes one, and `build` refuses a value
that looks like an E.164 number. `event_id` is a SHA-256 of what makes the decision one (root,
attempt, detail-type, reason): the same decision recorded again, or an event delivered twice,
carries the same id, so consumers dedupe on it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum


class DetailType(StrEnum):
    RETRY_SENT = "Retry Sent"
    RETRY_RECOVERED = "Retry Recovered"
    GAVE_UP = "Gave Up"
    RECIPIENT_SUPPRESSED = "Recipient Suppressed"


SOURCE = "redeliver"

# The allow-list: `detail` carries these and nothing else (events/schemas/ say the same).
DETAIL_FIELDS = (
    "event_id",
    "account_sid",
    "chat_service_sid",
    "conversation_sid",
    "message_sid",
    "new_message_sid",
    "root",
    "attempt",
    "error_code",
    "action",
    "reason",
)

_NUMBER = re.compile(r"\+?\d{7,15}")  # digits only, as long as an E.164 number: never a SID's


class UnsafeDetail(ValueError):
    """A detail value that could be a phone number: the event is not built."""


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    detail_type: DetailType
    detail: dict[str, str]

    @property
    def event_id(self) -> str:
        return self.detail["event_id"]


def event_id(root: str, attempt: int, detail_type: DetailType, reason: str = "") -> str:
    """Stable across redeliveries: the same decision always has the same id."""
    key = f"redeliver/outcome/v1:{root}/{attempt}/{detail_type.value}/{reason}"
    return hashlib.sha256(key.encode()).hexdigest()


def build(
    detail_type: DetailType,
    *,
    root: str,
    attempt: int,
    message_sid: str,
    account_sid: str = "",
    chat_service_sid: str = "",
    conversation_sid: str = "",
    new_message_sid: str = "",
    error_code: int | None = None,
    action: str = "",
    reason: str = "",
) -> OutcomeEvent:
    """The event of one decision. `reason` is part of its identity only for a give-up (a
    decision has one reason; the others' reasons are informative)."""
    identity = reason if detail_type is DetailType.GAVE_UP else ""
    detail = {
        "event_id": event_id(root, attempt, detail_type, identity),
        "account_sid": account_sid,
        "chat_service_sid": chat_service_sid,
        "conversation_sid": conversation_sid,
        "message_sid": message_sid,
        "new_message_sid": new_message_sid,
        "root": root,
        "attempt": str(attempt),
        "error_code": str(error_code or ""),
        "action": action,
        "reason": reason,
    }
    for name in ("action", "reason"):
        if _NUMBER.search(detail[name]):
            raise UnsafeDetail(f"{name} looks like a phone number")
    return OutcomeEvent(detail_type, {name: detail[name] for name in DETAIL_FIELDS})
