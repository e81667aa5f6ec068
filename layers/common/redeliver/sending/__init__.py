"""The ways to send an attempt (policy v2 actions), each in its own module behind `Way`.

The retry worker (redeliver/retry.py) keeps the one orchestration — re-check, claim, send,
record — and the exactly-once path around it: the same claim, the same marker in the new
message's attributes, the same chain links and the same stale-claim search for every way. A way
says only three things:

- `prepare`: the new message, marked (pure: what is sent);
- `create`: where and how it is created (Twilio calls; a create that may have been stored raises
  `TwilioError("ambiguous")`, and only then);
- `find`: where a stale claim's message would be, for the marker search (`find_retry`).

| way          | module         | policy action                                          |
|--------------|----------------|--------------------------------------------------------|
| `Same`       | `same.py`      | `retry`, and `fallback_sms` to a recipient not on WhatsApp |
| `Templated`  | `template.py`  | `template`                                             |
| `SmsFallback`| `sms.py`       | `fallback_sms` to a WhatsApp recipient                 |

Adding an action is a new module here and a line in `way_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redeliver.chain import CannotResend, Chain, MessageSnapshot, NewMessage
from redeliver.conversations import ConversationsGateway
from redeliver.policy import Send
from redeliver.quiet_hours import e164, is_whatsapp


@dataclass(frozen=True, slots=True)
class Target:
    """Where the failed message was: its service and conversation, and its recipient."""

    service_sid: str
    conversation_sid: str
    address: str | None  # the failed receipt's participant's messaging address, if known


@dataclass(frozen=True, slots=True)
class Sent:
    """A new message, and the conversation it is in (an SMS fallback's is not the failed one's:
    its follow-up asks Twilio there)."""

    sid: str
    conversation_sid: str


class Way(Protocol):
    name: str

    def prepare(self, original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend: ...

    def create(
        self, twilio: ConversationsGateway, target: Target, message: NewMessage, chain: Chain
    ) -> Sent: ...

    def find(
        self, twilio: ConversationsGateway, target: Target, chain: Chain, retry_of: str
    ) -> Sent | None: ...


def way_for(decision: Send, address: str | None) -> Way:
    """The way a `Send` decision is carried out, for a recipient at `address`."""
    from redeliver.sending.same import Same  # noqa: PLC0415 - the modules import this one
    from redeliver.sending.sms import SmsFallback  # noqa: PLC0415
    from redeliver.sending.template import Templated  # noqa: PLC0415

    if decision.action == "template" and decision.template is not None:
        return Templated(decision.template)
    if decision.action == "fallback_sms" and decision.sms_from is not None:
        phone = e164(address)
        if is_whatsapp(address) and phone is not None:
            return SmsFallback(decision.sms_from, phone)
    return Same()
