"""Delivery receipts: the `onDeliveryUpdated` event and the receipt state machine.

Pure domain: no AWS, no Twilio. The DynamoDB adapter implements `classify` as one
conditional write and then calls `classify` itself on the item it got back, so the rules
below are the only copy of them.

Ordering (DESIGN invariant 2): the latest Twilio `DateUpdated` wins; at equal times the
status further along wins (`ORDER_RANK`). Both fold into one integer, `DeliveryEvent.order_key`,
which DynamoDB can compare in a condition expression; the status name breaks the last tie (two
unknown statuses in the same second), so any order of the same events ends the same.

Times are compared to the whole second. Twilio's REST answers (the Receipts list that
reconciliation and follow-ups read) carry whole seconds, while a webhook's `DateUpdated` may carry
milliseconds: compared to the millisecond, a failure learned from the Receipts API in the same
second as a stored `sent` webhook would look older than it and be ignored, and the same event from
both paths would not be one event. Within a second the rank decides, which is the rule for ties
anyway (a delivery outranks a failure: SMS statuses are tentative).

Which webhook fields a receipt needs (TWILIO.md lists them; DESIGN.md says what each is for).
Twilio does not resend a webhook, so a 400 loses the receipt for good: only a field without
which the receipt cannot be stored, ordered or acted on safely is worth that.

- Required (missing or malformed: 400 naming it): `MessageSid` and `DeliveryReceiptSid` (the
  table's key), `ConversationSid` (every REST call of a retry is under it, with no fallback),
  `Status` (the state machine), `DateUpdated` (invariant 2's order; `DateCreated` stands in
  when it is absent).
- Required when present: `DateCreated` (the chain's first-sent time, which `max_age` counts
  from: a wrong one could allow a resend the policy forbids), and `ErrorCode` on a failure
  status (it picks the policy rule; a guess could resend after a permanent error, invariant 5).
  Absent, they are "as old as DateUpdated" and "no code".
- Optional (`OPTIONAL_FIELDS`; malformed: dropped, reported in `ParsedReceipt.dropped`, counted
  and logged by ingest, never a 400): `AccountSid`, `ChatServiceSid`, `ParticipantSid`,
  `ChannelMessageSid` (stored for the record and for operators), and `ErrorCode` on a status
  that is not a failure (it decides nothing there, and refusing a `delivered` would lose the
  very event that stops a resend). An empty `chat_service_sid` means "unknown service": the
  retry worker must not build a URL from it. SIDs follow the patterns of Twilio's OpenAPI
  description (`../shared/oai`); a value that does not match is never stored or put in a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

FAILURE_STATUSES = frozenset({"undelivered", "failed"})
SUCCESS_STATUSES = frozenset({"delivered", "read"})

# Tie-break at equal DateUpdated: a later stage wins. A delivery confirmation outranks a failure
# (SMS statuses are tentative and `delivered` is the last word); unknown statuses rank lowest.
ORDER_RANK: Mapping[str, int] = {
    "sent": 1,
    "undelivered": 2,
    "failed": 3,
    "delivered": 4,
    "read": 5,
}
_RANK_SLOTS = 10  # order_key = epoch milliseconds (whole seconds) * 10 + rank
_SECOND = timedelta(seconds=1)

# The dates a receipt may carry: [EARLIEST_DATE, LATEST_DATE), checked in `parse_time`, so that
# nothing after parsing can overflow. Twilio dates are recent; these bounds are about what the
# code can represent, not about what is plausible:
# - from the Unix epoch: the order key is epoch milliseconds, and stays a non-negative integer;
# - to a year before `datetime.max`: the retry policy adds at most `MAX_INTERVAL` (its bound on
#   `max_age_seconds` and every delay) to a receipt's dates, and `datetime + timedelta` raises
#   OverflowError past year 9999. The order key then needs 17 digits (DynamoDB Numbers hold 38).
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(9999, 1, 1, tzinfo=UTC)
MAX_INTERVAL = timedelta(days=365)

# A receipt keeps one history entry per distinct status (that status's latest event), so its
# history is bounded by the number of statuses. A status Twilio's spec does not name (`sent`,
# `delivered`, `read`, `undelivered`, `failed`) must look like a status; it is kept in the
# history only, never as the receipt's status: neither a success (which would stop a retry and
# take a failure out of the outbox) nor a failure (which would resend) — see `Change.UNKNOWN`.
_STATUS_RE = re.compile(r"^[a-z][a-z_-]{0,31}$")
_SID_RE = {
    prefix: re.compile(rf"^{prefix}[0-9a-fA-F]{{32}}$")
    for prefix in ("AC", "CH", "IS", "IM", "DY", "MB")
}
# The spec's pattern for a receipt's channel_message_sid (SM… for SMS, WA… for WhatsApp, …).
_CHANNEL_SID_RE = re.compile(r"^[a-zA-Z]{2}[0-9a-fA-F]{32}$")
_ERROR_CODE_RE = re.compile(r"^-?[0-9]{1,7}$")  # ASCII only: int() also takes "1_0", " 1"
OPTIONAL_FIELDS = (
    "AccountSid",
    "ChatServiceSid",
    "ParticipantSid",
    "ChannelMessageSid",
    "ErrorCode",
)

DELIVERY_EVENT_TYPE = "onDeliveryUpdated"


class MalformedEvent(ValueError):
    """A signed webhook whose fields are not a usable delivery receipt (answered with 400)."""


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One `onDeliveryUpdated` webhook: a status change of one receipt of one message."""

    message_sid: str
    receipt_sid: str
    conversation_sid: str
    status: str
    date_updated: datetime
    date_created: datetime
    error_code: int | None = None
    account_sid: str = ""
    chat_service_sid: str = ""
    participant_sid: str = ""
    channel_message_sid: str = ""

    @property
    def is_failure(self) -> bool:
        return self.status in FAILURE_STATUSES

    @property
    def is_known_status(self) -> bool:
        return self.status in ORDER_RANK

    @property
    def order_key(self) -> int:
        # Integer arithmetic: a float timestamp rounds late dates to another millisecond. Whole
        # seconds (see the module docstring), kept on the millisecond scale that stored items use.
        millis = (self.date_updated - EARLIEST_DATE) // _SECOND * 1000
        return millis * _RANK_SLOTS + ORDER_RANK.get(self.status, 0)

    def history_entry(self) -> HistoryEntry:
        return HistoryEntry(at=iso(self.date_updated), error_code=self.error_code)

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-able fields (SQS message bodies, the outbox sweeper)."""
        return {
            "message_sid": self.message_sid,
            "receipt_sid": self.receipt_sid,
            "conversation_sid": self.conversation_sid,
            "status": self.status,
            "error_code": self.error_code,
            "date_updated": iso(self.date_updated),
            "date_created": iso(self.date_created),
            "account_sid": self.account_sid,
            "chat_service_sid": self.chat_service_sid,
            "participant_sid": self.participant_sid,
            "channel_message_sid": self.channel_message_sid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryEvent:
        """Inverse of `to_dict`; raises MalformedEvent on anything it would not have produced."""
        try:
            code = data.get("error_code")
            return cls(
                message_sid=_sid(data["message_sid"], "IM", "message_sid"),
                receipt_sid=_sid(data["receipt_sid"], "DY", "receipt_sid"),
                conversation_sid=_sid(data["conversation_sid"], "CH", "conversation_sid"),
                status=_status(data["status"]),
                error_code=None if code is None else int(code),
                date_updated=parse_time(data["date_updated"], "date_updated"),
                date_created=parse_time(data["date_created"], "date_created"),
                account_sid=str(data.get("account_sid", "")),
                chat_service_sid=str(data.get("chat_service_sid", "")),
                participant_sid=str(data.get("participant_sid", "")),
                channel_message_sid=str(data.get("channel_message_sid", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MalformedEvent):
                raise
            raise MalformedEvent(f"bad event record: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    event: DeliveryEvent
    dropped: tuple[str, ...] = ()  # optional fields present but malformed: left out


def parse_delivery_event(form: Mapping[str, str]) -> DeliveryEvent:
    """`parse_receipt(form).event`: for callers with no use for what was dropped."""
    return parse_receipt(form).event


def parse_receipt(form: Mapping[str, str]) -> ParsedReceipt:
    """Build a DeliveryEvent from the webhook's form fields, or raise MalformedEvent naming why.

    A malformed optional field is left out and named in `dropped` (see the module docstring).
    """
    missing = [
        name
        for name in ("MessageSid", "DeliveryReceiptSid", "ConversationSid", "Status")
        if not form.get(name)
    ]
    if missing:
        raise MalformedEvent(f"missing field(s): {', '.join(missing)}")
    created = form.get("DateCreated")
    date_created = parse_time(created, "DateCreated") if created else None
    updated = form.get("DateUpdated")
    if updated:
        date_updated = parse_time(updated, "DateUpdated")
    elif date_created is not None:
        date_updated = date_created
    else:
        raise MalformedEvent("missing field(s): DateUpdated")
    status = _status(form["Status"])
    dropped: list[str] = []

    def optional(name: str, pattern: re.Pattern[str]) -> str:
        value = form.get(name, "")
        if value and not pattern.fullmatch(value):
            dropped.append(name)
            return ""
        return value

    try:
        error_code = _error_code(form.get("ErrorCode", ""))
    except MalformedEvent:
        if status in FAILURE_STATUSES:
            raise
        error_code = None
        dropped.append("ErrorCode")
    event = DeliveryEvent(
        message_sid=_sid(form["MessageSid"], "IM", "MessageSid"),
        receipt_sid=_sid(form["DeliveryReceiptSid"], "DY", "DeliveryReceiptSid"),
        conversation_sid=_sid(form["ConversationSid"], "CH", "ConversationSid"),
        status=status,
        error_code=error_code,
        date_updated=date_updated,
        date_created=date_created or date_updated,
        account_sid=optional("AccountSid", _SID_RE["AC"]),
        chat_service_sid=optional("ChatServiceSid", _SID_RE["IS"]),
        participant_sid=optional("ParticipantSid", _SID_RE["MB"]),
        channel_message_sid=optional("ChannelMessageSid", _CHANNEL_SID_RE),
    )
    return ParsedReceipt(event, tuple(sorted(dropped, key=OPTIONAL_FIELDS.index)))


def parse_time(value: str, name: str) -> datetime:
    """ISO 8601 with a zone (Twilio sends `2024-05-01T10:00:00Z`); returned in UTC, to the
    millisecond that is stored (so an event read back equals the event parsed).

    A date outside [EARLIEST_DATE, LATEST_DATE) is malformed: `9999-12-31T23:59:59-01:00` is a
    valid ISO date that no `datetime` can hold in UTC, and year 9999 leaves no room for a delay.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MalformedEvent(f"{name} is not an ISO 8601 date: {value!r}") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{name} has no time zone: {value!r}")
    # Aware comparison works on the UTC difference without building the UTC datetime, which is
    # what overflows; after it, `astimezone` cannot.
    if not EARLIEST_DATE <= parsed < LATEST_DATE:
        raise MalformedEvent(
            f"{name} is out of range: {value!r} (from {iso(EARLIEST_DATE)}, before "
            f"{iso(LATEST_DATE)})"
        )
    utc = parsed.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    """The one text form of a time this package writes: UTC, milliseconds, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sid_matches(value: str, prefix: str) -> bool:
    """Whether `value` is a SID of kind `prefix` (AC, CH, IS, IM, DY, MB), as the spec says."""
    return bool(_SID_RE[prefix].fullmatch(value))


def _sid(value: object, prefix: str, name: str) -> str:
    text = str(value)
    if not _SID_RE[prefix].fullmatch(text):
        raise MalformedEvent(f"{name} is not a {prefix}… SID")
    return text


def _status(value: object) -> str:
    text = str(value)
    if not _STATUS_RE.fullmatch(text):
        raise MalformedEvent(f"Status is not a delivery status: {text[:40]!r}")
    return text


def _error_code(value: str) -> int | None:
    """Twilio's error code: digits, or blank when there is no error (tolerate 0 and null)."""
    if value in ("", "0", "null"):
        return None
    if not _ERROR_CODE_RE.fullmatch(value):
        raise MalformedEvent(f"ErrorCode is not an integer: {value[:20]!r}")
    code = int(value[:8])  # the pattern allows at most 7 digits past the sign
    if not 0 < code < 1_000_000:
        raise MalformedEvent(f"ErrorCode out of range: {value[:20]}")
    return code


# ----------------------------------------------------------------------------------------------
# The receipt state machine
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: str
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class ReceiptState:
    """What is stored for one receipt: its latest event, and one history entry per status.
    `status` is "" (`NO_STATUS`) while the receipt has only statuses Twilio's spec does not name."""

    status: str
    order_key: int
    error_code: int | None
    history: Mapping[str, HistoryEntry] = field(default_factory=dict)

    @property
    def is_failure(self) -> bool:
        return self.status in FAILURE_STATUSES


NO_STATUS = ""


class Change(StrEnum):
    NEW = "new"  # first event of this receipt (with a status the spec names)
    LATEST = "latest"  # a newer event: it becomes the receipt's status
    OLDER = "older"  # a distinct but older event: history only
    DUPLICATE = "duplicate"  # seen before: nothing changes
    UNKNOWN = "unknown"  # a status the spec does not name: history only, counted, never acted on


@dataclass(frozen=True, slots=True)
class Transition:
    change: Change
    previous_status: str | None
    enqueue: bool
    """True when this event becomes the receipt's latest status and that status is a failure:
    the retry worker must decide about it. Duplicates and older events never enqueue."""


def classify(state: ReceiptState | None, event: DeliveryEvent) -> Transition:
    """How `event` changes a receipt currently in `state` (None: never seen)."""
    if not event.is_known_status:
        seen = state.history.get(event.status) if state else None
        duplicate = seen is not None and seen.at == iso(event.date_updated)
        previous = state.status if state else None
        return Transition(Change.DUPLICATE if duplicate else Change.UNKNOWN, previous, False)
    if state is None or state.status == NO_STATUS:
        return Transition(Change.NEW, None, enqueue=event.is_failure)
    if (event.order_key, event.status) > (state.order_key, state.status):
        return Transition(Change.LATEST, state.status, enqueue=event.is_failure)
    seen = state.history.get(event.status)
    same_as_latest = (event.order_key, event.status) == (state.order_key, state.status)
    if same_as_latest or (seen is not None and seen.at == iso(event.date_updated)):
        return Transition(Change.DUPLICATE, state.status, enqueue=False)
    return Transition(Change.OLDER, state.status, enqueue=False)


def newer_in_history(state: ReceiptState, event: DeliveryEvent) -> bool:
    """History keeps, per status, that status's latest event (any arrival order gives the same)."""
    seen = state.history.get(event.status)
    return seen is None or seen.at < iso(event.date_updated)


def apply(state: ReceiptState | None, event: DeliveryEvent) -> tuple[ReceiptState, Transition]:
    """The stored state after `event`; the reference model the DynamoDB write must match."""
    transition = classify(state, event)
    if transition.change is Change.UNKNOWN:
        kept = state or ReceiptState(NO_STATUS, 0, None)
        if not newer_in_history(kept, event):
            return kept, transition
        history = {**kept.history, event.status: event.history_entry()}
        return replace(kept, history=history), transition
    if state is None or transition.change in (Change.NEW, Change.LATEST):
        history = dict(state.history) if state else {}
        history[event.status] = event.history_entry()
        return ReceiptState(event.status, event.order_key, event.error_code, history), transition
    if transition.change is Change.OLDER and newer_in_history(state, event):
        history = {**state.history, event.status: event.history_entry()}
        return ReceiptState(state.status, state.order_key, state.error_code, history), transition
    return state, transition
