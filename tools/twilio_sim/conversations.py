"""Conversations: create (a UniqueName is unique within its service), fetch by SID or UniqueName,
and ParticipantConversations (the conversations an address or identity takes part in)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tools.samples import sid
from tools.twilio_sim.state import Account, Conversation
from tools.twilio_sim.wire import (
    TWILIO_URL,
    Answer,
    base_path,
    error,
    not_found,
    page,
    scoped,
    twilio_date,
)

UNIQUE_NAME_TAKEN = 50353


def create_conversation(
    account: Account, service: str | None, form: dict[str, list[str]]
) -> Answer:
    service = service or account.chat_service_sid
    if service not in account.services:
        return not_found()
    values = {k: v[0] for k, v in form.items()}
    unique = values.get("UniqueName") or None
    if unique and any(
        c.service == service and c.unique_name == unique for c in account.conversations.values()
    ):
        return Answer(409, error(409, UNIQUE_NAME_TAKEN))
    conversation = sid("CH", f"created-{account.seed}-{next(account.ids)}")
    account.conversations[conversation] = Conversation(
        conversation,
        service,
        unique_name=unique,
        friendly_name=values.get("FriendlyName") or None,
        attributes=values.get("Attributes") or "{}",
        created=twilio_date(datetime.now(UTC)),
    )
    return Answer(201, conversation_resource(account, account.conversations[conversation]))


def fetch_conversation(account: Account, service: str | None, name: str) -> Answer:
    chat = account.conversation(service, name)
    if chat is None:  # the path's Sid may be the UniqueName
        scope = service or account.chat_service_sid
        chat = next(
            (
                c
                for c in account.conversations.values()
                if c.service == scope and c.unique_name == name
            ),
            None,
        )
    if chat is None:
        return not_found()
    return Answer(200, scoped(conversation_resource(account, chat), service))


def conversation_resource(account: Account, chat: Conversation) -> dict[str, Any]:
    url = f"{TWILIO_URL}{base_path(chat.service, chat.sid)}"
    return {
        "account_sid": account.account_sid,
        "chat_service_sid": chat.service,
        "messaging_service_sid": sid("MG", "messaging"),
        "sid": chat.sid,
        "friendly_name": chat.friendly_name,
        "unique_name": chat.unique_name,
        "attributes": chat.attributes,
        "state": "active",
        "date_created": chat.created,
        "date_updated": chat.created,
        "timers": {},
        "url": url,
        "links": {
            "participants": f"{url}/Participants",
            "messages": f"{url}/Messages",
            "webhooks": f"{url}/Webhooks",
        },
        "bindings": None,
    }


def participant_conversations(
    account: Account, service: str | None, query: dict[str, list[str]], path: str
) -> Answer:
    scope = service or account.chat_service_sid
    first = {k: v[0] for k, v in query.items()}
    address, identity = first.get("Address"), first.get("Identity")
    found: list[tuple[int, dict[str, Any]]] = []
    for chat in account.conversations.values():
        if chat.service != scope:
            continue
        for p in chat.participants:
            binding = p["messaging_binding"] or {}
            if (address and binding.get("address") == address) or (
                identity and p["identity"] == identity
            ):
                found.append((len(found), participant_conversation(account, chat, p, service)))
    return page("conversations", found, path, query)


def participant_conversation(
    account: Account, chat: Conversation, participant: dict[str, Any], service: str | None
) -> dict[str, Any]:
    resource = {
        "account_sid": account.account_sid,
        "chat_service_sid": chat.service,
        "participant_sid": participant["sid"],
        "participant_user_sid": None,
        "participant_identity": participant["identity"],
        "participant_messaging_binding": participant["messaging_binding"],
        "conversation_sid": chat.sid,
        "conversation_unique_name": chat.unique_name,
        "conversation_friendly_name": chat.friendly_name,
        "conversation_attributes": chat.attributes,
        "conversation_date_created": chat.created,
        "conversation_date_updated": chat.created,
        "conversation_created_by": "system",
        "conversation_state": "active",
        "conversation_timers": {},
        "links": {
            "participant": f"{TWILIO_URL}{base_path(chat.service, chat.sid)}/Participants/"
            f"{participant['sid']}",
            "conversation": f"{TWILIO_URL}{base_path(chat.service, chat.sid)}",
        },
    }
    return resource if service else {k: v for k, v in resource.items() if k != "chat_service_sid"}
