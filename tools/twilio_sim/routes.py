"""Which resource answers a request: each endpoint's path, in the service-scoped form
(`/v1/Services/{IS}/...`) and the short form (the default service only), and `route`."""

from __future__ import annotations

import re
from collections.abc import Mapping

from tools.twilio_sim import conversations, messages, participants, services, webhooks
from tools.twilio_sim.faults import Fault, Faults
from tools.twilio_sim.state import Account
from tools.twilio_sim.wire import Answer, not_found

_SCOPE = r"^/v1/(?:Services/(?P<service>IS\w{32})/)?Conversations/(?P<conversation>CH\w{32})"
_MESSAGE = re.compile(_SCOPE + r"/Messages/(?P<message>IM\w{32})$")
_MESSAGES = re.compile(_SCOPE + r"/Messages$")
_RECEIPTS = re.compile(_SCOPE + r"/Messages/(?P<message>IM\w{32})/Receipts$")
_PARTICIPANTS = re.compile(_SCOPE + r"/Participants$")
_PARTICIPANT = re.compile(_SCOPE + r"/Participants/(?P<participant>MB\w{32})$")
_CONVERSATIONS = re.compile(r"^/v1/(?:Services/(?P<service>IS\w{32})/)?Conversations$")
_CONVERSATION = re.compile(
    r"^/v1/(?:Services/(?P<service>IS\w{32})/)?Conversations/(?P<conversation>[^/]+)$"
)
_PARTICIPANT_CONVERSATIONS = re.compile(
    r"^/v1/(?:Services/(?P<service>IS\w{32})/)?ParticipantConversations$"
)
_SERVICE_WEBHOOKS = re.compile(r"^/v1/Services/(IS\w{32})/Configuration/Webhooks$")
_SERVICES = "/v1/Services"


def creates_a_message(method: str, path: str) -> bool:
    return method == "POST" and _MESSAGES.match(path) is not None


def route(  # noqa: PLR0911, PLR0912 - one return per route
    account: Account,
    method: str,
    path: str,
    query: dict[str, list[str]],
    form: dict[str, list[str]],
    *,
    headers: Mapping[str, str],
    fault: Fault | None,
    faults: Faults,
) -> Answer:
    """The answer of the resource `path` names (the caller holds the account's lock)."""
    if match := _MESSAGE.match(path):
        answer = messages.fetch_message(
            account, match["service"], match["conversation"], match["message"]
        )
        answer.refuse_for = faults.draw_refusal()
        return answer
    if match := _MESSAGES.match(path):
        service, conversation = match["service"], match["conversation"]
        if method == "POST":
            return messages.create_message(
                account, service, conversation, form, headers=headers, fault=fault, faults=faults
            )
        return messages.list_messages(account, service, conversation, query, path)
    if match := _RECEIPTS.match(path):
        service, conversation = match["service"], match["conversation"]
        return messages.list_receipts(
            account, service, conversation, match["message"], query=query, path=path
        )
    if match := _PARTICIPANTS.match(path):
        service, conversation = match["service"], match["conversation"]
        if method == "POST":
            return participants.add_participant(account, service, conversation, form)
        return participants.list_participants(account, service, conversation, query, path)
    if match := _PARTICIPANT.match(path):
        return participants.fetch_participant(
            account, match["service"], match["conversation"], match["participant"]
        )
    if (match := _CONVERSATIONS.match(path)) and method == "POST":
        return conversations.create_conversation(account, match["service"], form)
    if (match := _CONVERSATION.match(path)) and method == "GET":
        return conversations.fetch_conversation(account, match["service"], match["conversation"])
    if match := _PARTICIPANT_CONVERSATIONS.match(path):
        return conversations.participant_conversations(account, match["service"], query, path)
    if match := _SERVICE_WEBHOOKS.match(path):
        return webhooks.service_webhooks(account, match.group(1), method, form)
    if path == "/v1/Configuration/Webhooks" and method == "GET":
        return webhooks.global_webhooks(account)
    if path == _SERVICES and method == "GET":
        return services.list_services(account, query, path)
    return not_found()
