"""What travels on RetryQueue: retry jobs (a failure, from ingest or the sweeper) and follow-ups
(did a retry the worker sent get delivered? Twilio's Receipts API is asked, so a follow-up names
the retry's conversation and Conversation Service; one queued before they were carried has
neither, and is still read)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from redeliver.domain.receipts import DeliveryEvent, MalformedEvent

JOB_VERSION = 1


@dataclass(frozen=True, slots=True)
class RetryJob:
    """A receipt that became a failure, and (once the worker decided to wait) when it is due."""

    event: DeliveryEvent
    due_at: int | None = None  # epoch seconds; None until the worker has looked at the job

    def to_json(self) -> str:
        body: dict[str, Any] = {"v": JOB_VERSION, "event": self.event.to_dict()}
        if self.due_at is not None:
            body["due_at"] = self.due_at
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RetryJob:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedEvent(f"retry job is not JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("v") != JOB_VERSION:
            raise MalformedEvent("retry job has no supported version")
        due_at = body.get("due_at")
        return cls(
            event=DeliveryEvent.from_dict(body.get("event") or {}),
            due_at=None if due_at is None else int(due_at),
        )

    def due(self, at: int) -> RetryJob:
        return replace(self, due_at=at)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Look at a sent retry's receipts once `due_at` has passed: recovered, or not."""

    message_sid: str  # the new message
    root: str
    attempt: int
    due_at: int
    conversation_sid: str = ""  # empty: queued before follow-ups asked Twilio (no lookup)
    chat_service_sid: str = ""  # empty: the account's default Conversation Service
    account_sid: str = ""  # the failed message's account, for the `Retry Recovered` event
    error_code: int | None = None  # the failure the retry answered, likewise
    look: int = 1  # which look at the retry this is: an unconfirmed one is looked at again

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "v": JOB_VERSION,
            "kind": "follow_up",
            "message_sid": self.message_sid,
            "root": self.root,
            "attempt": self.attempt,
            "due_at": self.due_at,
        }
        if self.conversation_sid:
            body["conversation_sid"] = self.conversation_sid
            body["chat_service_sid"] = self.chat_service_sid
        if self.account_sid:
            body["account_sid"] = self.account_sid
        if self.error_code is not None:
            body["error_code"] = self.error_code
        if self.look != 1:
            body["look"] = self.look
        return json.dumps(body, separators=(",", ":"))

    def due(self, at: int) -> FollowUp:
        return replace(self, due_at=at)


def parse_job(text: str) -> RetryJob | FollowUp:
    """Either kind of job, or MalformedEvent."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(f"job is not JSON: {exc}") from None
    if isinstance(body, dict) and body.get("kind") == "follow_up":
        try:
            return FollowUp(
                str(body["message_sid"]),
                str(body["root"]),
                int(body["attempt"]),
                int(body["due_at"]),
                str(body.get("conversation_sid") or ""),
                str(body.get("chat_service_sid") or ""),
                str(body.get("account_sid") or ""),
                None if body.get("error_code") is None else int(body["error_code"]),
                int(body.get("look", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedEvent(f"bad follow-up job: {exc!r}") from None
    return RetryJob.from_json(text)
