"""Retry chains: an original (root) message, its attempts, and the new messages they created.

Pure domain. Each new message carries its origin in its attributes (DESIGN invariant 6):

    {"redeliver": {"retry_of": "IM<failed>", "root": "IM<original>", "attempt": n}}

and the table links both ways: the root's `ATTEMPT#n` item names the new message, the new
message's `ORIGIN` item names its root, so a failed retry continues its root's attempt count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

MARKER_KEY = "redeliver"


@dataclass(frozen=True, slots=True)
class MessageSnapshot:
    """What the worker needs of a message to send it again."""

    sid: str
    conversation_sid: str
    author: str | None
    body: str | None
    attributes: Mapping[str, Any]
    media_sids: Sequence[str]
    content_sid: str | None
    date_created: datetime | None

    @property
    def marker(self) -> Mapping[str, Any]:
        own = self.attributes.get(MARKER_KEY)
        return own if isinstance(own, Mapping) else {}


@dataclass(frozen=True, slots=True)
class NewMessage:
    author: str | None
    body: str | None
    attributes: Mapping[str, Any]
    media_sid: str | None = None
    content_sid: str | None = None
    content_variables: Mapping[str, Any] | None = None


def parse_attributes(raw: str | None) -> dict[str, Any]:
    """A message's attributes: a JSON object, or empty when absent or not an object."""
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class AttemptState(StrEnum):
    CLAIMED = "claimed"  # a worker owns it and may be sending now
    SENT = "sent"  # the new message exists (new_message_sid)
    GAVE_UP = "gave_up"  # recorded, with a reason; alarmed by metric


@dataclass(frozen=True, slots=True)
class Intent:
    """What a claimant is about to create (DESIGN invariant 8), recorded on its claim before any
    Twilio call that creates something. Whoever resolves the claim once it is stale searches
    exactly there, for the attempt's marker (its root and number: the claim's own key), in
    messages no older than the claim; nothing is inferred from the policy, which may have been
    redeployed since.

    An SMS fallback finds or creates its conversation after the claim: the claim names the
    conversation's unique name, the sender and the recipient (a hash, as suppressions keep it:
    never a phone number), and gets the conversation's SID before the message create. A claim
    with no `conversation_sid` therefore never created a message."""

    way: str  # the way of sending's name: retry, template, fallback_sms
    service_sid: str  # the Conversation Service
    conversation_sid: str = ""  # where the message is created; "" until an SMS fallback knows
    unique_name: str = ""  # the conversation an SMS fallback creates if Twilio has none
    sender: str = ""  # an SMS fallback's proxy address (the policy's `from` when claimed)
    recipient_hash: str = (
        ""  # an SMS fallback's recipient, hashed (redeliver.adapters.dynamodb.suppressions)
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    root: str
    number: int
    state: AttemptState
    claimed_at: int = 0
    new_message_sid: str = ""
    new_conversation_sid: str = ""  # where the new message is (an SMS fallback's own)
    reason: str = ""
    first_sent_at: datetime | None = None
    failed_message_sid: str = ""  # the failure this attempt answers (the marker's retry_of)
    intent: Intent | None = None  # None: claimed before intents were recorded, or decided


@dataclass(frozen=True, slots=True)
class Origin:
    """Stored under a new message: where it came from."""

    root: str
    retry_of: str
    attempt: int
    first_sent_at: datetime


@dataclass(frozen=True, slots=True)
class Chain:
    """Where a failed message stands: its root, the attempt a retry would be, the root's age."""

    root: str
    attempt: int
    first_sent_at: datetime

    @classmethod
    def of(cls, message_sid: str, origin: Origin | None, sent_at: datetime) -> Chain:
        if origin is None:
            return cls(message_sid, 1, sent_at)
        return cls(origin.root, origin.attempt + 1, origin.first_sent_at)


def marker_of(attributes: Mapping[str, Any]) -> tuple[str, int, str] | None:
    """(root, attempt, retry_of) as a message's marker claims them, when well formed: a root
    and a retry_of that are message SIDs, an attempt that is an integer of at least 1. What it
    claims is not yet true (DESIGN invariant 9): the table must agree (Claims.marked_chain)."""
    marker = attributes.get(MARKER_KEY)
    if not isinstance(marker, Mapping):
        return None
    root, attempt, retry_of = marker.get("root"), marker.get("attempt"), marker.get("retry_of")
    if not (isinstance(root, str) and root.startswith("IM")):
        return None
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        return None
    return root, attempt, retry_of if isinstance(retry_of, str) else ""


def marker_chain(message: MessageSnapshot) -> tuple[str, int] | None:
    """(root, attempt of this message) if the message's marker names a retry (well formed;
    see `marker_of`: only the table can say whether it is true)."""
    marked = marker_of(message.attributes)
    return None if marked is None else marked[:2]


@dataclass(frozen=True, slots=True)
class CannotResend:
    reason: str


def marked_attributes(original: MessageSnapshot, chain: Chain) -> dict[str, Any]:
    """The original's attributes (the app's own data, its `redeliver` settings) with the
    attempt's marker merged in."""
    attributes: dict[str, Any] = dict(original.attributes)
    own: dict[str, Any] = dict(original.marker)
    own.update({"retry_of": original.sid, "root": chain.root, "attempt": chain.attempt})
    attributes[MARKER_KEY] = own
    return attributes


def new_message(original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend:
    """The message to send for `chain.attempt`: the original's content, marked.

    The original attributes are kept (the app's own data, and its `redeliver` settings), with the
    marker merged in. A content template is carried over only with known variables: Twilio does
    not return `content_variables`, so the app must have put them in
    `attributes.redeliver.content_variables` (`{}` for a template without variables).
    """
    if len(original.media_sids) > 1:
        return CannotResend("multiple_media")  # create takes one MediaSid
    attributes = marked_attributes(original, chain)
    variables = original.marker.get("content_variables")
    if original.content_sid:
        if not isinstance(variables, Mapping):
            return CannotResend("template_variables_unknown")
        return NewMessage(
            author=original.author,
            body=None,
            attributes=attributes,
            content_sid=original.content_sid,
            content_variables=variables,
        )
    if not original.body and not original.media_sids:
        return CannotResend("nothing_to_send")
    return NewMessage(
        author=original.author,
        body=original.body,
        attributes=attributes,
        media_sid=original.media_sids[0] if original.media_sids else None,
    )
