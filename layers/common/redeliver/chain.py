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
    recipients: int | None  # delivery.total: non-chat participants the message went to
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
class Attempt:
    root: str
    number: int
    state: AttemptState
    claimed_at: int = 0
    new_message_sid: str = ""
    new_conversation_sid: str = ""  # where the new message is (an SMS fallback's own)
    reason: str = ""
    first_sent_at: datetime | None = None


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


def marker_chain(message: MessageSnapshot) -> tuple[str, int] | None:
    """(root, attempt of this message) if the message is itself a retry, from its marker."""
    marker = message.marker
    root, attempt = marker.get("root"), marker.get("attempt")
    if isinstance(root, str) and isinstance(attempt, int) and not isinstance(attempt, bool):
        return root, attempt
    return None


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
