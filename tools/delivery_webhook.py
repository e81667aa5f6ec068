"""One `onDeliveryUpdated` webhook as Twilio sends it: its form fields for a message's receipt
(`webhook_fields`), the statuses a receipt goes through (`receipt_steps`: delivered, or one of the
failures Twilio reports on its channel, `FAILURES`), and the post Twilio signs — or one of the
forgeries of it that Twilio never sent (`signed_post`).

    SMS      sent → delivered         | sent → undelivered 30003, 30008 (retry), 30006 (landline),
                                      |   30007 (filtered) | failed 30005, 21610 (unsubscribed)
    WhatsApp sent → delivered → read  | failed 63016 (outside the 24 h window), 63024 (not a
                                      |   WhatsApp user) | sent → undelivered 63032, 30003

each code picked so that every action of the offline policy (tools.offline.policy.OFFLINE_POLICY)
comes up: retry, template (63016), fallback_sms (63024, 63032), suppress (30005, 30006, 21610),
give_up (30007). A `failed` is refused before sending: no `sent` comes first.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from tools.apigw import sign
from tools.samples import sid

# (status, error code) sequences after `sent`; the first element is the outcome's name.
FAILURES = {
    "sms": [
        ("undelivered", 30003),
        ("failed", 30005),
        ("undelivered", 30008),
        ("undelivered", 30006),
        ("failed", 21610),
        ("undelivered", 30007),
    ],
    "whatsapp": [
        ("failed", 63016),
        ("failed", 63024),
        ("undelivered", 63032),
        ("undelivered", 30003),
    ],
}

FORGERIES = ("unsigned", "other-token", "altered")


def receipt_steps(
    rng: random.Random, channel: str, *, fails: bool
) -> tuple[str, list[tuple[str, int | None]]]:
    """A receipt's outcome (`delivered`, `undelivered 30003`) and the (status, error code) it goes
    through: a failure drawn from FAILURES[channel], or delivered (then read, on WhatsApp)."""
    if fails:
        status, code = rng.choice(FAILURES[channel])
        steps: list[tuple[str, int | None]] = [("sent", None), (status, code)]
        if status == "failed":  # refused before it was sent
            steps = [("failed", code)]
        return f"{status} {code}", steps
    steps = [("sent", None), ("delivered", None)]
    if channel == "whatsapp":
        steps.append(("read", None))
    return "delivered", steps


def signed_post(
    url: str, fields: dict[str, str], token: str, forgery: str = ""
) -> tuple[str, dict[str, str]]:
    """The body and headers of the post of `fields` to `url`, signed with `token` as Twilio signs
    it; or, given a `forgery` (one of FORGERIES), unsigned, signed with another token, or altered
    after signing."""
    body = urlencode(fields)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(url, fields, token),
        "User-Agent": "TwilioProxy/1.1",
    }
    if forgery == "unsigned":
        del headers["X-Twilio-Signature"]
    elif forgery == "other-token":
        headers["X-Twilio-Signature"] = sign(url, fields, token + "-not")
    elif forgery == "altered":  # signed, then a field changed on the way
        body = urlencode({**fields, "Status": "failed", "ErrorCode": "30003"})
        if body == urlencode(fields):
            body = urlencode({**fields, "Status": "undelivered"})
    return body, headers


def label(fields: dict[str, str]) -> str:
    """A webhook's status as the report counts it: `sent`, `undelivered 30003`."""
    return f"{fields['Status']} {fields['ErrorCode']}".rstrip()


def webhook_fields(
    message: dict[str, Any],
    receipt: int,
    status: str,
    code: int | None,
    updated: datetime,
    *,
    participant: str,
) -> dict[str, str]:
    """The form fields of the webhook of `message`'s n-th receipt (`receipt`) reaching `status`."""
    created = message["date_created"]
    updated = updated.replace(microsecond=0)
    return {
        "AccountSid": message["account_sid"],
        "ChatServiceSid": message["chat_service_sid"],
        "ConversationSid": message["conversation_sid"],
        "MessageSid": message["sid"],
        "DeliveryReceiptSid": sid("DY", f"{message['sid']}-{receipt}"),
        "ChannelMessageSid": sid("SM", f"{message['sid']}-{receipt}"),
        "ParticipantSid": participant,
        "EventType": "onDeliveryUpdated",
        "Status": status,
        "ErrorCode": "" if code is None else str(code),
        "DateCreated": created,
        # Twilio's webhooks write milliseconds (`2025-01-01T00:00:01.000Z`): here always .000.
        "DateUpdated": updated.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "Source": "API",
        "ClientIdentity": "",
    }
