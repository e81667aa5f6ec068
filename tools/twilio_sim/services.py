"""The account's Conversation Services (`GET /v1/Services`): the cheapest authenticated call the
Conversations API has, which `redeliver smoke` makes to prove the stack's credentials work."""

from __future__ import annotations

from tools.twilio_sim.state import Account
from tools.twilio_sim.wire import Answer, page


def list_services(account: Account, query: dict[str, list[str]], path: str) -> Answer:
    items = list(enumerate(account.services.values(), start=1))  # services are never removed
    return page("services", [(n, dict(service)) for n, service in items], path, query)
