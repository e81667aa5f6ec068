"""A conversation's participants: list, fetch, and add one (an Identity, or a MessagingBinding
whose address and proxy no other conversation of the service holds)."""

from __future__ import annotations

from datetime import UTC, datetime

from tools.samples import sid
from tools.twilio_sim.state import Account
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

BINDING_TAKEN = 50416


def list_participants(
    account: Account, service: str | None, conversation: str, query: dict[str, list[str]], path: str
) -> Answer:
    chat = account.conversation(service, conversation)
    if chat is None:
        return not_found()
    items = [(n, scoped(p, service)) for n, p in enumerate(chat.participants)]
    return page("participants", items, path, query)


def fetch_participant(
    account: Account, service: str | None, conversation: str, participant: str
) -> Answer:
    chat = account.conversation(service, conversation)
    found = [p for p in chat.participants if p["sid"] == participant] if chat else []
    return Answer(200, scoped(found[0], service)) if found else not_found()


def add_participant(
    account: Account, service: str | None, conversation: str, form: dict[str, list[str]]
) -> Answer:
    chat = account.conversation(service, conversation)
    if chat is None:
        return not_found()
    values = {k: v[0] for k, v in form.items()}
    address = values.get("MessagingBinding.Address")
    proxy = values.get("MessagingBinding.ProxyAddress")
    identity = values.get("Identity")
    if bool(address) == bool(identity) or (address and not proxy):
        return Answer(400, error(400, 50402))  # "Invalid participant binding" family
    binding = None
    if address:
        for other in account.conversations.values():
            if other.service != chat.service:
                continue
            for p in other.participants:
                taken = p["messaging_binding"] or {}
                if (taken.get("address"), taken.get("proxy_address")) == (address, proxy):
                    return Answer(409, error(409, BINDING_TAKEN))
        kind = "whatsapp" if address.startswith("whatsapp:") else "sms"
        binding = {"type": kind, "address": address, "proxy_address": proxy}
    moment = twilio_date(datetime.now(UTC))
    participant_sid = sid("MB", f"{conversation}-added-{len(chat.participants)}")
    participant = {
        "account_sid": account.account_sid,
        "chat_service_sid": chat.service,
        "conversation_sid": conversation,
        "sid": participant_sid,
        "identity": identity,
        "attributes": values.get("Attributes") or "{}",
        "messaging_binding": binding,
        "role_sid": None,
        "date_created": moment,
        "date_updated": moment,
        "url": f"{TWILIO_URL}{base_path(chat.service, conversation)}/Participants/"
        f"{participant_sid}",
        "last_read_message_index": None,
        "last_read_timestamp": None,
    }
    chat.participants.append(participant)
    return Answer(201, scoped(participant, service))
