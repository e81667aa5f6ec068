"""The retry job: what travels on RetryQueue between ingest (or the sweeper) and the worker."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from redeliver.receipts import DeliveryEvent, MalformedEvent

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
