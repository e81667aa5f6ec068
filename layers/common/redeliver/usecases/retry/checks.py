"""What the retry worker looks at before it decides to send (DESIGN invariant 5): the policy's
answer for what is known, the conversation's members now and the failed receipt's recipient.

Each is a question, not a decision: the worker (worker.py) acts on the answers. A Twilio call
that did not answer raises `RetryLater` (the record comes back in a few seconds); a participant
removed since is an answer (nobody to resend to, to suppress or to wait for).
"""

from __future__ import annotations

from datetime import UTC, datetime

from redeliver.adapters.twilio.conversations import (
    PARTICIPANTS_LISTED,
    ConversationsGateway,
    TwilioError,
)
from redeliver.domain.chain import Chain
from redeliver.domain.jobs import RetryJob
from redeliver.domain.policy import Decision, Failure, Overrides, RetryPolicy, decide
from redeliver.usecases.retry.outcomes import THROTTLED_SECONDS, RetryLater, Timing


class Checks:
    def __init__(self, twilio: ConversationsGateway, policy: RetryPolicy, timing: Timing) -> None:
        self._twilio = twilio
        self._policy = policy
        self._timing = timing

    def ask_policy(
        self,
        job: RetryJob,
        chain: Chain,
        now: float,
        *,
        recipients: int | None = None,
        overrides: Overrides | None = None,
        address: str | None = None,
        known: bool = False,
    ) -> Decision:
        """`known`: the recipient's address has been looked at (quiet hours apply)."""
        event = job.event
        failure = Failure(
            event.error_code,
            chain.attempt,
            event.date_updated,
            chain.first_sent_at,
            recipients,
            overrides or Overrides(),
            key=f"{chain.root}#{chain.attempt}",
            address=address,
            address_known=known,
        )
        moment = datetime.fromtimestamp(now, UTC)
        return decide(self._policy, failure, moment, self._timing.policy_jitter)

    def members(self, job: RetryJob, author: str | None) -> tuple[int, str | None, bool]:
        """One listing of the conversation: how many non-chat recipients a new message would
        reach (it keeps the original's `author`, and Twilio delivers a message to every
        participant but its author: in a masked-number conversation between two phones the
        writer is no recipient), the failed receipt's recipient's address among them (fetched
        on its own only when the listing was cut short: a conversation that large is a group
        anyway), and whether that recipient is still a member. One who left (or was replaced)
        is not resent to: the new message would reach only the others, who may have received
        the original (a group's other member would get it twice) or never should (someone
        added since)."""
        event = job.event
        try:
            members = self._twilio.participants(event.chat_service_sid, event.conversation_sid)
        except TwilioError as error:
            raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS)) from error
        recipients = sum(1 for member in members if member.address and member.address != author)
        listed = {member.sid: member.address for member in members}
        if not event.participant_sid or event.participant_sid in listed:
            return recipients, listed.get(event.participant_sid or ""), True
        if len(members) < PARTICIPANTS_LISTED:  # the whole listing: removed since
            return recipients, None, False
        try:
            address = self._twilio.participant_address(
                event.chat_service_sid, event.conversation_sid, event.participant_sid
            )
        except TwilioError as error:
            if error.kind == "not_found":  # removed since
                return recipients, None, False
            raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS)) from error
        return recipients, address, True

    def address(self, job: RetryJob) -> str | None:
        """The failed receipt's recipient: its participant's messaging address."""
        event = job.event
        if not event.participant_sid:
            return None
        try:
            return self._twilio.participant_address(
                event.chat_service_sid, event.conversation_sid, event.participant_sid
            )
        except TwilioError as error:
            if error.kind == "not_found":  # removed since: nobody to suppress or to wait for
                return None
            raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS)) from error
