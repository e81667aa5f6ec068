"""Messages and their delivery receipts: fetch, create (where a fault may answer, before or after
the store), list, and a message's Receipts list."""

from __future__ import annotations

import time
from collections.abc import Mapping

from tools.twilio_sim.faults import Fault, Faults
from tools.twilio_sim.state import Account
from tools.twilio_sim.wire import Answer, error, header, not_found, page, scoped


def fetch_message(account: Account, service: str | None, conversation: str, message: str) -> Answer:
    chat = account.conversation(service, conversation)
    found = [m for m in chat.messages if m["sid"] == message] if chat else []
    return Answer(200, scoped(found[0], service)) if found else not_found()


def create_message(
    account: Account,
    service: str | None,
    conversation: str,
    form: dict[str, list[str]],
    *,
    headers: Mapping[str, str],
    fault: Fault | None,
    faults: Faults,
) -> Answer:
    """A scripted `fault`, else one drawn from `faults`, may answer in place of the 201: before
    the store (nothing stored) or after it (stored, the client sees an error or waits)."""
    chat = account.conversation(service, conversation)
    if chat is None:
        return not_found()
    fault = fault or faults.draw_create()
    if fault and not (fault.stored or fault.timeout_after_create):
        return Answer(fault.status, error(fault.status, fault.code), fault.delay)
    values = {k: v[0] for k, v in form.items()}
    media_sid = values.pop("MediaSid", None)
    media = (
        [{"sid": media_sid, "content_type": "image/jpeg", "filename": "f.jpg", "size": 1}]
        if media_sid
        else None
    )
    message = account.store_message(conversation, values, media, None)
    account.created_at[str(message["sid"])] = time.monotonic()
    if (header(headers, "X-Twilio-Webhook-Enabled") or "").lower() == "true":
        account.webhook_enabled.add(str(message["sid"]))
    account.created.append(
        {
            **message,
            "content_variables": values.get("ContentVariables"),
            "x_twilio_webhook_enabled": header(headers, "X-Twilio-Webhook-Enabled"),
        }
    )
    if fault and fault.stored:
        return Answer(fault.status, error(fault.status, fault.code), fault.delay)
    return Answer(201, scoped(message, service), fault.delay if fault else 0.0)


def list_messages(
    account: Account, service: str | None, conversation: str, query: dict[str, list[str]], path: str
) -> Answer:
    chat = account.conversation(service, conversation)
    if chat is None:
        return not_found()
    items = [(m["index"], scoped(m, service)) for m in chat.messages]
    return page("messages", items, path, query)


def list_receipts(
    account: Account,
    service: str | None,
    conversation: str,
    message: str,
    *,
    query: dict[str, list[str]],
    path: str,
) -> Answer:
    chat = account.conversation(service, conversation)
    if chat is None or not any(m["sid"] == message for m in chat.messages):
        return not_found()
    receipts = account.receipts.get(message, [])
    items = [(n, scoped(r, service)) for n, r in enumerate(receipts)]
    return page("delivery_receipts", items, path, query, most=50)
