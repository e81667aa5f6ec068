"""WhatsApp to SMS (action `fallback_sms`): the same content as SMS from the policy's `from`.

An SMS goes to a conversation where the recipient's phone number is a participant through that
proxy number, in the same Conversation Service: the one Twilio already has
(`ParticipantConversations?Address=`), else a new one with that participant. Twilio lets an
address and proxy pair sit in one conversation only (50416), so the lookup is also how a second
try finds what a first one built.

The conversation found may be a group: other SMS participants would receive the original's
content (a one-time code, say). The policy's `group_conversations` applies to it as to the failed
one, and since the SMS can go nowhere else (50416), a group is given up as
`sms_group_conversation` unless the policy allows groups. The lookup's answer does not say who
else takes part: the found conversation's participants are listed (one call).

Exactly once, under the same crashes as a plain retry, without a second conversation or message:
- the claim records the intent first (`intent`): this way, the service, the sender (the policy's
  `from` at the time), a hash of the recipient's number and the unique name below — never the
  number itself;
- the new conversation's `UniqueName` is `redeliver-sms-<root>-<attempt>-<sender>`: a create
  repeated after a crash (or a timeout) meets Twilio's 50353 and fetches the first one instead;
  a take-over after a redeploy with another `from` builds its own, never a second sender in the
  claimant's (one message would reach the phone twice, from two numbers);
- a participant added before a crash makes the lookup find the conversation next time; one added
  by another worker meanwhile answers 50416, and the lookup runs again;
- the conversation found or built is written on the claim (`note`) before the message create: a
  stale claim that names none never created a message, and one that names it is searched for
  there (`sending.find_intended`), back to the claim's time, whatever the policy's `from` is now;
- the message itself is created under the attempt's claim with the attempt's marker (plus
  `"channel": "sms"`).

A crash after any step leaves: a claim (no create yet: taken over once stale, and the lookup
finds what was built); a conversation without its participant (50353 next time: fetched, the
participant added); the participant (the lookup finds the pair); the conversation named on the
claim (searched: nothing there, taken over, sent once); the message (found there, recorded).

`find` serves claims from before intents were recorded: it looks where the policy's `from`
sends today, back to the failed message, as it did then.
"""

from __future__ import annotations

from typing import Any

from redeliver.adapters.dynamodb.suppressions import address_hash
from redeliver.adapters.twilio.conversations import ConversationsGateway, TwilioError
from redeliver.domain.chain import (
    MARKER_KEY,
    CannotResend,
    Chain,
    Intent,
    MessageSnapshot,
    NewMessage,
)
from redeliver.domain.chain import new_message as same_content
from redeliver.usecases.retry.sending import Note, Refused, Sent, Target

LOOKUPS = 2  # a 50416 means the pair appeared meanwhile: look once more, then leave it to SQS


def unique_name(chain: Chain, sender: str) -> str:
    """The attempt's SMS conversation from `sender`. The sender is in the name: a worker that
    takes a stale claim over after a redeploy with another `from` builds its own conversation,
    and never adds the recipient a second time, through a second number, to the claimant's."""
    return f"redeliver-sms-{chain.root}-{chain.attempt}-{sender.removeprefix('+')}"


class SmsFallback:
    name = "fallback_sms"

    def __init__(self, sms_from: str, phone: str, *, groups: bool = False) -> None:
        self._from = sms_from
        self._phone = phone  # the recipient's E.164 number (its WhatsApp address without prefix)
        self._groups = groups  # the policy allows sending into a group conversation

    def prepare(self, original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend:
        message = same_content(original, chain)
        if isinstance(message, CannotResend):
            return message
        attributes: dict[str, Any] = dict(message.attributes)
        attributes[MARKER_KEY] = {**attributes[MARKER_KEY], "channel": "sms"}
        return NewMessage(
            author=message.author,
            body=message.body,
            attributes=attributes,
            media_sid=message.media_sid,
            content_sid=message.content_sid,
            content_variables=message.content_variables,
        )

    def intent(self, target: Target, chain: Chain) -> Intent:
        """The conversation is not known before the claim: its unique name, the sender and the
        recipient (hashed) are; `create` notes the conversation before the message create."""
        return Intent(
            self.name,
            target.service_sid,
            unique_name=unique_name(chain, self._from),
            sender=self._from,
            recipient_hash=address_hash(self._phone),
        )

    def create(
        self,
        twilio: ConversationsGateway,
        target: Target,
        message: NewMessage,
        chain: Chain,
        note: Note,
    ) -> Sent:
        conversation = self._conversation(twilio, target.service_sid, chain)
        note(conversation)
        return Sent(twilio.create_message(target.service_sid, conversation, message), conversation)

    def find(
        self, twilio: ConversationsGateway, target: Target, chain: Chain, retry_of: str
    ) -> Sent | None:
        conversation = twilio.conversation_with(target.service_sid, self._phone, self._from)
        if conversation is None:  # no SMS conversation: the message was never created
            return None
        sid = twilio.find_retry(
            target.service_sid, conversation, chain.root, chain.attempt, retry_of=retry_of
        )
        return None if sid is None else Sent(sid, conversation)

    def _conversation(self, twilio: ConversationsGateway, service: str, chain: Chain) -> str:
        for _ in range(LOOKUPS):
            found = twilio.conversation_with(service, self._phone, self._from)
            if found is not None:
                if not self._groups and twilio.recipients(service, found) > 1:
                    raise Refused("sms_group_conversation")
                return found
            created = twilio.create_conversation(
                service, unique_name(chain, self._from), "SMS fallback"
            )
            if twilio.add_sms_participant(service, created, self._phone, self._from):
                return created
        raise TwilioError("transient", "50416: the pair sits in a conversation the lookup missed")
