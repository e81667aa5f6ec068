"""A Conversation Service's webhook configuration (`Configuration/Webhooks`): where, and for which
events, Twilio would send the service's webhooks. The webhooks themselves are sent by the
listeners of new messages (tools.webhook_emitter), not here."""

from __future__ import annotations

from tools.twilio_sim.state import Account
from tools.twilio_sim.wire import TWILIO_URL, Answer, not_found


def service_webhooks(
    account: Account, service: str, method: str, form: dict[str, list[str]]
) -> Answer:
    if service not in account.services:
        return not_found()
    config = account.service_webhooks.setdefault(
        service,
        {
            "account_sid": account.account_sid,
            "chat_service_sid": service,
            "pre_webhook_url": None,
            "post_webhook_url": None,
            "filters": [],
            "method": "POST",
        },
    )
    if method == "POST":
        if "Filters" in form:
            config["filters"] = list(form["Filters"])
        for name, key in (
            ("PostWebhookUrl", "post_webhook_url"),
            ("PreWebhookUrl", "pre_webhook_url"),
            ("Method", "method"),
        ):
            if name in form:
                config[key] = form[name][0]
    url = f"{TWILIO_URL}/v1/Services/{service}/Configuration/Webhooks"
    return Answer(200, {**config, "url": url})


def global_webhooks(account: Account) -> Answer:
    """GET /v1/Configuration/Webhooks: the account's global webhooks, which Twilio fires for a
    service only while that service has no webhooks of its own."""
    url = f"{TWILIO_URL}/v1/Configuration/Webhooks"
    return Answer(200, {**account.global_webhooks, "url": url})
