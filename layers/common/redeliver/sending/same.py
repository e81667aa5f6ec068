"""The same content again, in the same conversation (action `retry`)."""

from __future__ import annotations

from redeliver.chain import CannotResend, Chain, MessageSnapshot, NewMessage, new_message
from redeliver.conversations import ConversationsGateway
from redeliver.sending import Target


class Same:
    name = "retry"

    def prepare(self, original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend:
        return new_message(original, chain)

    def create(
        self, twilio: ConversationsGateway, target: Target, message: NewMessage, chain: Chain
    ) -> str:
        return twilio.create_message(target.service_sid, target.conversation_sid, message)

    def find(
        self, twilio: ConversationsGateway, target: Target, chain: Chain, retry_of: str
    ) -> str | None:
        return twilio.find_retry(
            target.service_sid,
            target.conversation_sid,
            chain.root,
            chain.attempt,
            retry_of=retry_of,  # the search reads back to it, no further
        )
