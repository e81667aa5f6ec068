"""The same content again, in the same conversation (action `retry`)."""

from __future__ import annotations

from redeliver.adapters.twilio.conversations import ConversationsGateway
from redeliver.domain.chain import (
    CannotResend,
    Chain,
    Intent,
    MessageSnapshot,
    NewMessage,
    new_message,
)
from redeliver.usecases.retry.sending import Note, Sent, Target


class Same:
    name = "retry"

    def prepare(self, original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend:
        return new_message(original, chain)

    def intent(self, target: Target, chain: Chain) -> Intent:
        """The failed message's own conversation: named by the claim itself."""
        return Intent(self.name, target.service_sid, target.conversation_sid)

    def create(
        self,
        twilio: ConversationsGateway,
        target: Target,
        message: NewMessage,
        chain: Chain,
        note: Note,
    ) -> Sent:
        sid = twilio.create_message(target.service_sid, target.conversation_sid, message)
        return Sent(sid, target.conversation_sid)

    def find(
        self, twilio: ConversationsGateway, target: Target, chain: Chain, retry_of: str
    ) -> Sent | None:
        """A claim from before intents: in the failed conversation, back to the failed message."""
        sid = twilio.find_retry(
            target.service_sid,
            target.conversation_sid,
            chain.root,
            chain.attempt,
            retry_of=retry_of,  # the search reads back to it, no further
        )
        return None if sid is None else Sent(sid, target.conversation_sid)
