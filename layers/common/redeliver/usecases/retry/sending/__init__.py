"""The ways to send an attempt (policy v2 actions), each in its own module behind `Way`.

The retry worker (redeliver/usecases/retry/worker.py) keeps the one orchestration — re-check, claim,
send, record — and the exactly-once path around it: the same claim, the same marker in the new
message's attributes, the same chain links and the same stale-claim search (claims.py) for every
way. A way says only these things:

- `prepare`: the new message, marked (pure: what is sent);
- `intent`: what it is about to create, and where, recorded on the claim before any create
  (DESIGN invariant 8; `chain.Intent`);
- `create`: where and how it is created (Twilio calls; a create that may have been stored raises
  `TwilioError("ambiguous")`, and only then). A conversation the intent could not name yet is
  passed to `note` before the message is created in it;
- `find`: where the message of a claim from before intents were recorded would be today, for
  the marker search (`find_retry`). A claim with an intent is searched for where it says
  (`find_intended`), whatever the way or the policy is now.

| way          | module         | policy action                                          |
|--------------|----------------|--------------------------------------------------------|
| `Same`       | `same.py`      | `retry`, and `fallback_sms` to a recipient not on WhatsApp |
| `Templated`  | `template.py`  | `template`                                             |
| `SmsFallback`| `sms.py`       | `fallback_sms` to a WhatsApp recipient                 |

Adding an action is a new module here and a line in `way_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redeliver.adapters.twilio.conversations import ConversationsGateway
from redeliver.domain.chain import CannotResend, Chain, Intent, MessageSnapshot, NewMessage
from redeliver.domain.policy import Send
from redeliver.domain.quiet_hours import e164, is_whatsapp


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


Note = Callable[[str], None]  # records the conversation a message is about to be created in


class Refused(Exception):
    """The way will not create this message (found under the claim, before any create): the
    attempt is given up with `reason`, its own counted reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Way(Protocol):
    name: str

    def prepare(self, original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend: ...

    def intent(self, target: Target, chain: Chain) -> Intent: ...

    def create(
        self,
        twilio: ConversationsGateway,
        target: Target,
        message: NewMessage,
        chain: Chain,
        note: Note,
    ) -> Sent: ...

    def find(
        self, twilio: ConversationsGateway, target: Target, chain: Chain, retry_of: str
    ) -> Sent | None: ...


def find_intended(
    twilio: ConversationsGateway, intent: Intent, chain: Chain, since: int
) -> Sent | None:
    """A stale claim's message, searched for exactly where its intent says, in messages no
    older than `since` (the claim's time, less the clocks' possible skew)."""
    if not intent.conversation_sid:
        return None  # a claim names its conversation before any message create: none was made
    sid = twilio.find_retry(
        intent.service_sid, intent.conversation_sid, chain.root, chain.attempt, since=since
    )
    return None if sid is None else Sent(sid, intent.conversation_sid)


def way_for(decision: Send, address: str | None, *, groups: bool = False) -> Way:
    """The way a `Send` decision is carried out, for a recipient at `address`; `groups`: the
    policy allows sending into a conversation with other recipients (`group_conversations`)."""
    from redeliver.usecases.retry.sending.same import Same  # noqa: PLC0415 - the modules import this one
    from redeliver.usecases.retry.sending.sms import SmsFallback  # noqa: PLC0415
    from redeliver.usecases.retry.sending.template import Templated  # noqa: PLC0415

    if decision.action == "template" and decision.template is not None:
        return Templated(decision.template)
    if decision.action == "fallback_sms" and decision.sms_from is not None:
        phone = e164(address)
        if is_whatsapp(address) and phone is not None:
            return SmsFallback(decision.sms_from, phone, groups=groups)
    return Same()
