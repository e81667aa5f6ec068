"""What one Twilio account holds (`Account`): its Conversation Services, their conversations,
participants and messages, and each message's delivery receipts, stored in the shapes of Twilio's
resources; and the ways a test changes it (add_conversation, add_message, set_receipt, ...).

Every change is made under the account's lock; the listeners (the webhook emitter) are told of new
messages after it is released (`notify`).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tools.samples import sid
from tools.twilio_sim.wire import TWILIO_URL, base_path, twilio_date


@dataclass
class Conversation:
    sid: str
    service: str
    participants: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    unique_name: str | None = None
    friendly_name: str | None = None
    attributes: str = "{}"
    created: str = ""


class Account:
    """One account's state; the simulator (tools.twilio_sim.simulator) serves it over HTTP."""

    def __init__(self, account_sid: str, seed: int) -> None:
        self.account_sid = account_sid
        self.chat_service_sid = sid("IS", "service")  # the account's default service
        # each Conversation Service's resource (`GET /v1/Services`), in the order it was added
        self.services: dict[str, dict[str, Any]] = {}
        self._add_service(self.chat_service_sid, "Default Conversations Service")
        self.conversations: dict[str, Conversation] = {}
        self.receipts: dict[str, list[dict[str, Any]]] = {}  # message SID -> its receipts
        self.created: list[dict[str, Any]] = []  # every message created through the API
        self.created_at: dict[str, float] = {}  # its SID -> time.monotonic() when it was stored
        # Messages whose create asked Twilio to fire the service's webhooks for it (a REST create
        # with X-Twilio-Webhook-Enabled: true, or the offline app's, which sends it): Twilio sends
        # a REST-created message's onMessageAdded only then.
        self.webhook_enabled: set[str] = set()
        self.service_webhooks: dict[str, dict[str, Any]] = {}
        # The account's global webhooks (/v1/Configuration/Webhooks): a service without webhooks
        # of its own runs on these; none set unless a test sets them.
        self.global_webhooks: dict[str, Any] = {
            "account_sid": self.account_sid,
            "method": "POST",
            "filters": [],
            "pre_webhook_url": None,
            "post_webhook_url": None,
            "target": "webhook",
        }
        self.listeners: list[Callable[[dict[str, Any], str, int], None]] = []
        self.seed = seed
        self.ids = itertools.count(1)
        self._lock = threading.Lock()
        self._new: list[tuple[dict[str, Any], str, int]] = []

    def add_service(self, name: object) -> str:
        """A Conversation Service other than the default one: reached only by its own paths."""
        service = sid("IS", name)
        with self._lock:
            if service not in self.services:
                self._add_service(service, str(name))
        return service

    def _add_service(self, service: str, friendly_name: str) -> None:
        moment = twilio_date(datetime.now(UTC))
        url = f"{TWILIO_URL}/v1/Services/{service}"
        self.services[service] = {
            "account_sid": self.account_sid,
            "sid": service,
            "friendly_name": friendly_name,
            "date_created": moment,
            "date_updated": moment,
            "url": url,
            "links": {
                name: f"{url}/{path}"
                for name, path in (
                    ("conversations", "Conversations"),
                    ("users", "Users"),
                    ("roles", "Roles"),
                    ("bindings", "Bindings"),
                    ("configuration", "Configuration"),
                    ("participant_conversations", "ParticipantConversations"),
                    ("conversation_with_participants", "ConversationWithParticipants"),
                )
            },
        }

    def add_conversation(
        self,
        recipients: int = 1,
        chat_participants: int = 0,
        name: object = None,
        channel: str = "sms",
        service: str | None = None,
        *,
        address: str | None = None,
    ) -> str:
        """A conversation with `recipients` participants on `channel` (`sms`, `whatsapp`: their
        addresses then read `whatsapp:+1...`, as Twilio's do), the first at `address` if given,
        and `chat_participants` chat identities."""
        conversation = sid("CH", name if name is not None else f"sim-{next(self.ids)}")
        service = service or self.chat_service_sid
        moment = twilio_date(datetime.now(UTC))
        prefix = "whatsapp:" if channel == "whatsapp" else ""
        participants = [
            {
                "sid": sid("MB", f"{conversation}-{n}"),
                "identity": None,
                "messaging_binding": {
                    "type": channel,
                    "address": f"{prefix}{address}"
                    if address and n == 0
                    else f"{prefix}+1555000{n:04d}",
                    "proxy_address": f"{prefix}+15550009999",
                },
            }
            for n in range(recipients)
        ] + [
            {
                "sid": sid("MB", f"{conversation}-chat-{n}"),
                "identity": f"agent-{n}",
                "messaging_binding": None,
            }
            for n in range(chat_participants)
        ]
        for participant in participants:
            path = f"{base_path(service, conversation)}/Participants/{participant['sid']}"
            participant.update(
                account_sid=self.account_sid,
                chat_service_sid=service,
                conversation_sid=conversation,
                attributes="{}",
                role_sid=None,
                date_created=moment,
                date_updated=moment,
                url=f"{TWILIO_URL}{path}",
                last_read_message_index=None,
                last_read_timestamp=None,
            )
        with self._lock:
            if service not in self.services:
                raise KeyError(f"no service {service}: add_service() first")
            self.conversations[conversation] = Conversation(
                conversation, service, participants, created=moment
            )
        return conversation

    def add_participant(self, conversation: str, address: str) -> str:
        """Someone joins a conversation on its first participant's channel (its proxy too), as
        `POST .../Participants` with a MessagingBinding would add them."""
        with self._lock:
            chat = self.conversations[conversation]
            first = chat.participants[0]
            binding = first["messaging_binding"]
            prefix = "whatsapp:" if binding and binding.get("type") == "whatsapp" else ""
            participant = {
                **first,
                "sid": sid("MB", f"{conversation}-joined-{len(chat.participants)}"),
                "identity": None,
                "messaging_binding": {**(binding or {}), "address": f"{prefix}{address}"},
            }
            chat.participants.append(participant)
        return str(participant["sid"])

    def participant_of(self, conversation: str, n: int = 0) -> str:
        """The SID of a conversation's n-th participant (a receipt's ParticipantSid)."""
        return str(self.conversations[conversation].participants[n]["sid"])

    def service_of(self, conversation: str) -> str:
        return self.conversations[conversation].service

    def add_message(
        self,
        conversation: str,
        body: str = "Your code is 123456",
        *,
        author: str = "system",
        attributes: dict[str, Any] | None = None,
        media: list[dict[str, Any]] | None = None,
        content_sid: str | None = None,
        created: datetime | None = None,
        webhook_enabled: bool = False,
    ) -> str:
        form = {
            "Author": author,
            "Body": body,
            "Attributes": json.dumps(attributes or {}),
            "ContentSid": content_sid,
        }
        with self._lock:
            stored = str(self.store_message(conversation, form, media, created)["sid"])
            if webhook_enabled:
                self.webhook_enabled.add(stored)
        self.notify()
        return stored

    def messages(self, conversation: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.conversations[conversation].messages)

    def set_receipt(
        self,
        message: str,
        status: str,
        error_code: int | None = None,
        *,
        receipt: int | str = 0,
        updated: datetime | None = None,
    ) -> dict[str, Any]:
        """Move one of a message's receipts (by position or DY SID) on, as Twilio's Receipts
        resource shows it: only the latest status is kept."""
        with self._lock:
            receipts = self.receipts[message]
            found = (
                receipts[receipt]
                if isinstance(receipt, int)
                else next(r for r in receipts if r["sid"] == receipt)
            )
            found.update(
                status=status,
                error_code=error_code or 0,
                date_updated=twilio_date(updated or datetime.now(UTC)),
            )
            return dict(found)

    def store_message(
        self,
        conversation: str,
        form: Mapping[str, Any],
        media: list[dict[str, Any]] | None,
        created: datetime | None,
    ) -> dict[str, Any]:
        """A message stored in `conversation`, with a receipt at `sent` for each recipient (the
        caller holds the lock; listeners hear of it at the next `notify`)."""
        chat = self.conversations[conversation]
        author = form.get("Author") or "system"
        # Twilio delivers a message to every non-chat participant but its author (an SMS
        # participant's own text is not sent back to it): receipts and delivery.total follow.
        recipients = [
            p
            for p in chat.participants
            if p["messaging_binding"] and p["messaging_binding"].get("address") != author
        ]
        bindings = [p["messaging_binding"] for p in recipients]
        moment = twilio_date(created or datetime.now(UTC))
        message_sid = sid("IM", f"{self.seed}-{conversation}-{len(chat.messages)}")
        url = f"{TWILIO_URL}{base_path(chat.service, conversation)}/Messages/{message_sid}"
        message = {
            "account_sid": self.account_sid,
            "chat_service_sid": chat.service,
            "conversation_sid": conversation,
            "sid": message_sid,
            "index": len(chat.messages),
            "author": author,
            "body": form.get("Body"),
            "media": media,
            "attributes": form.get("Attributes") or "{}",
            "participant_sid": None,
            "date_created": moment,
            "date_updated": moment,
            "delivery": {
                "total": len(bindings),
                "sent": "all",
                "delivered": "none",
                "read": "none",
                "failed": "none",
                "undelivered": "none",
            }
            if bindings
            else None,
            "url": url,
            "links": {
                "delivery_receipts": f"{url}/Receipts",
                "channel_metadata": f"{url}/ChannelMetadata",
            },
            "content_sid": form.get("ContentSid") or None,
        }
        chat.messages.append(message)
        self.receipts[message_sid] = [
            {
                "account_sid": self.account_sid,
                "chat_service_sid": chat.service,
                "conversation_sid": conversation,
                "message_sid": message_sid,
                "sid": sid("DY", f"{message_sid}-{n}"),
                "channel_message_sid": sid("SM", f"{message_sid}-{n}"),
                "participant_sid": participant["sid"],
                "status": "sent",
                "error_code": 0,  # the schema allows no null: its default
                "date_created": moment,
                "date_updated": moment,
                "url": f"{url}/Receipts/{sid('DY', f'{message_sid}-{n}')}",
            }
            for n, participant in enumerate(recipients)
        ]
        if bindings:  # what Twilio will report receipts for: one per non-chat participant
            self._new.append((message, bindings[0]["type"], len(bindings)))
        return message

    def notify(self) -> None:
        """Tell the listeners of the messages stored since the last call, outside the lock."""
        with self._lock:
            new, self._new = self._new, []
        for message, channel, recipients in new:
            for listener in self.listeners:
                listener(message, channel, recipients)

    def conversation(self, service: str | None, conversation: str) -> Conversation | None:
        """The short path (`service` None) reaches only the default service's conversations."""
        chat = self.conversations.get(conversation)
        if chat is None or chat.service != (service or self.chat_service_sid):
            return None
        return chat
