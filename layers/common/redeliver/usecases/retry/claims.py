"""Claim resolution: an attempt's claim in a record's way, resolved by the intent recorded on it
(DESIGN invariant 8), and what only the claimant may record (DESIGN invariant 4).

A record meets a claim when its own claim, or its give-up, finds the attempt taken (`resume`):
- decided already (sent, or given up): a duplicate. A `sent` attempt's follow-up is queued again:
  the record that sent it may have died before it queued one, or SQS refused it.
- claimed, and younger than any function run (`claim_stale_seconds`): another worker may be
  sending now. The record goes back to SQS until the claim turns stale.
- claimed and stale: its worker died after the claim, or its create timed out. The attempt's
  marker is looked for where the claim's intent says, never where today's policy would send (it
  may have been redeployed): found → recorded; not found → the claim is taken over (with the
  taker's own intent), and the taker sends. A claim that names no conversation yet (an SMS
  fallback before its lookup) created nothing. The search reads newest first back to the claim's
  time (the retry is newer; `CLOCK_SKEW_SECONDS` more); a conversation so busy that its limit
  runs out first proves nothing, and the job goes back (then to the DLQ). A claim from before
  intents were recorded is searched for as then: where this worker (or the policy's rule for the
  code) would send, back to the failed message.

Only the claimant, or nobody, may record a give-up, since a claim may have sent: a give-up that
meets another worker's claim goes the same way, searching where the claim's intent says, whatever
its own code's rule is (`give_up`). A message found, or sent, is recorded with its ORIGIN link
before its follow-up is queued (`record_sent`).

With outcome events on (`events`), each record writes its decision's event item in the same
transaction (adapters/dynamodb/outcome_events.py): `Retry Sent` with `record_sent`, `Gave Up`
with a give-up, `Recipient Suppressed` with a suppression (`suppressed_event`).

A marker in a message's attributes is trusted the same way (DESIGN invariant 9): only when the
table agrees that its root's attempt is sent as, or claimed for, that message (`marked_chain`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from redeliver.adapters.dynamodb.attempts import Attempts
from redeliver.adapters.dynamodb.outcome_events import OutcomeEventItems
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import (
    ConversationsGateway,
    MarkerSearchInconclusive,
    TwilioError,
)
from redeliver.domain.chain import Attempt, AttemptState, Chain, Intent, MessageSnapshot, marker_of
from redeliver.domain.jobs import FollowUp, RetryJob
from redeliver.domain.outcome_events import DetailType, build
from redeliver.domain.policy import RetryPolicy, Send
from redeliver.domain.receipts import DeliveryEvent
from redeliver.observability import logger
from redeliver.usecases.retry.outcomes import (
    AWS_FAULT_SECONDS,
    THROTTLED_SECONDS,
    Outcome,
    Result,
    RetryLater,
    Timing,
)
from redeliver.usecases.retry.sending import Sent, Target, Way, find_intended, way_for
from redeliver.usecases.retry.sending.same import Same

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# A message created after its claim may still be dated by Twilio before the claim's time (taken
# from the worker's clock, to the second): the stale-claim search reads back this much further.
CLOCK_SKEW_SECONDS = 60


class Claims:
    """An attempt's claim, once a record has decided to send or to give up: the claim in its
    way (`resume`), and the records only its claimant writes (`record_sent`, `give_up`)."""

    def __init__(
        self,
        attempts: Attempts,
        queue: RetryQueue,
        twilio: ConversationsGateway,
        policy: RetryPolicy,
        timing: Timing,
        *,
        stale_seconds: int,
        follow_up_seconds: int,
        address: Callable[[RetryJob], str | None],
        events: OutcomeEventItems | None = None,
    ) -> None:
        """`address`: the failed receipt's recipient (`Checks.address`), asked only for a claim
        from before intents were recorded whose rule sent SMS."""
        self._attempts = attempts
        self._queue = queue
        self._twilio = twilio
        self._policy = policy
        self._timing = timing
        self._stale = stale_seconds
        self._follow_up = follow_up_seconds
        self._address = address
        self._events = events

    def resume(
        self,
        job: RetryJob,
        chain: Chain,
        existing: Attempt | None,
        now: float,
        *,
        way: Way | None = None,
        target: Target | None = None,
        mine: Intent | None = None,
    ) -> Result | None:
        """Another record got to this attempt first. None: this worker may send after all (it
        took the stale claim over, with its own intent `mine`; a give-up has none).
        `way`, `target`: how this worker would send; they matter only for a claim from before
        intents were recorded (`_claimants_message`)."""
        if existing is None:  # released in between (a transient failure): try again later
            raise RetryLater(
                "attempt claim changed under us", self._timing.soon(AWS_FAULT_SECONDS), chain
            )
        if existing.state is not AttemptState.CLAIMED:
            if existing.state is AttemptState.SENT and existing.new_message_sid:
                # Its follow-up may never have been queued (the record died after record_sent,
                # or SQS refused it): without it a retry that gets no webhook is never judged,
                # its failure never retried. Queued again; a follow-up is idempotent (it records
                # Twilio's truth, and counts its verdict once per attempt).
                sent = Sent(
                    existing.new_message_sid,
                    existing.new_conversation_sid or job.event.conversation_sid,
                )
                self._queue_follow_up(chain, sent, job.event, int(now))
            return Result(
                Outcome.DUPLICATE,
                existing.state.value,
                new_message_sid=existing.new_message_sid,
                chain=chain,
            )
        if now - existing.claimed_at < self._stale:
            seconds = self.until_stale(existing.claimed_at)
            raise RetryLater("another worker holds the claim", seconds, chain)
        # A stale claim: its worker died, or its create timed out. Did the message go out?
        try:
            found = self._claimants_message(job, chain, existing, way, target)
        except TwilioError as error:
            raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS), chain) from error
        except MarkerSearchInconclusive as error:  # never "not sent" from a partial look: the
            # claim stays, and after maxReceiveCount the job waits in the DLQ for a person
            raise RetryLater(str(error), self._stale, chain) from error
        if found is not None:
            action = existing.intent.way if existing.intent else ""
            self.record_sent(chain, found, job.event, action)
            return Result(Outcome.SENT, "found after an interrupted send", found.sid, chain=chain)
        if not self._attempts.take_over(chain, existing.claimed_at, int(now), mine):
            seconds = self.until_stale(int(now))
            raise RetryLater("another worker took the stale claim", seconds, chain)
        return None

    def give_up(
        self,
        chain: Chain,
        job: RetryJob,
        reason: str,
        now: float,
        claimed_at: int | None = None,
        *,
        also: Sequence[TransactWriteItemTypeDef] = (),
    ) -> Result:
        """Only the claimant (`claimed_at`), or nobody, may give an attempt up: another worker's
        claim may have sent, so a give-up that meets it goes the way a send does (`resume`).
        `also`: what this decision writes with its give-up, and only if it records it."""
        also = [*also, *self._event(DetailType.GAVE_UP, chain, job.event, now, reason=reason)]
        for _ in range(2):
            in_the_way = self._attempts.record_give_up(
                chain, job.event, reason, int(now), claimed_at, also=also
            )
            if in_the_way is None:
                return Result(Outcome.GAVE_UP, reason, chain=chain)
            resumed = self.resume(job, chain, in_the_way, now)
            if resumed is not None:
                return resumed
            claimed_at = int(now)  # the stale claim is ours now, and its message never went out
        raise RetryLater(
            "the attempt's claim keeps changing", self._timing.soon(AWS_FAULT_SECONDS), chain
        )

    def record_sent(
        self, chain: Chain, sent: Sent, retry_of: DeliveryEvent, action: str = ""
    ) -> None:
        # The ORIGIN link is written first: a failure the follow-up finds continues the chain.
        # A crash (or an SQS error) between the record and the queued follow-up: the record
        # comes back, finds the attempt `sent`, and `resume` queues the follow-up again.
        now = int(self._timing.clock())
        events = self._event(
            DetailType.RETRY_SENT, chain, retry_of, now, action=action, new_message_sid=sent.sid
        )
        self._attempts.record_sent(
            chain, sent.sid, retry_of.message_sid, now, sent.conversation_sid, events=events
        )
        self._queue_follow_up(chain, sent, retry_of, now)

    def suppressed_event(
        self, chain: Chain, job: RetryJob, now: float
    ) -> list[TransactWriteItemTypeDef]:
        """`Recipient Suppressed`, for the transaction of the give-up that suppresses."""
        return self._event(
            DetailType.RECIPIENT_SUPPRESSED,
            chain,
            job.event,
            now,
            action="suppress",
            reason="suppressed",
        )

    def _event(
        self,
        detail_type: DetailType,
        chain: Chain,
        failure: DeliveryEvent,
        now: float,
        *,
        action: str = "",
        reason: str = "",
        new_message_sid: str = "",
    ) -> list[TransactWriteItemTypeDef]:
        """The decision's outcome event item; none when outcome events are off."""
        if self._events is None:
            return []
        event = build(
            detail_type,
            root=chain.root,
            attempt=chain.attempt,
            message_sid=failure.message_sid,
            account_sid=failure.account_sid,
            chat_service_sid=failure.chat_service_sid,
            conversation_sid=failure.conversation_sid,
            new_message_sid=new_message_sid,
            error_code=failure.error_code,
            action=action or ("give_up" if detail_type is DetailType.GAVE_UP else ""),
            reason=reason,
        )
        return [self._events.put(event, int(now))]

    def until_stale(self, claimed_at: int) -> int:
        """Seconds until a claim made at `claimed_at` is stale (then the marker search decides)."""
        return max(1, math.ceil(claimed_at + self._stale - self._timing.clock()) + 1)

    def marked_chain(self, message: MessageSnapshot, chain: Chain) -> Chain:
        """The chain the message's marker names, when it differs from `chain` and the table
        agrees (DESIGN invariant 9): that root's attempt is sent as this message, or claimed for
        it (its worker is between create and record, or died there). A marker copied from a
        retry into another message, or malformed, proves nothing: the message is its own root."""
        marked = marker_of(message.attributes)
        if marked is None:
            return chain
        root, number, retry_of = marked
        if (root, number + 1) == (chain.root, chain.attempt):
            return chain
        attempt = self._attempts.get_attempt(root, number)
        if attempt is None or not _made(attempt, message, retry_of):
            logger.info(
                "marker not trusted: the table does not agree",
                extra={"message_sid": message.sid, "root": root, "attempt": number},
            )
            return chain
        return Chain(root, number + 1, attempt.first_sent_at or chain.first_sent_at)

    def _claimants_message(
        self,
        job: RetryJob,
        chain: Chain,
        claim: Attempt,
        way: Way | None,
        target: Target | None,
    ) -> Sent | None:
        """A stale claim's message, searched for where its claimant said it would send, in
        messages no older than the claim (DESIGN invariant 8): not where today's policy would
        send, which may have been redeployed since. A claim from before intents were recorded
        is searched for as it was then: the way this worker sends (or the policy's rule for the
        code), back to the failed message."""
        if claim.intent is not None:
            since = claim.claimed_at - CLOCK_SKEW_SECONDS
            return find_intended(self._twilio, claim.intent, chain, since)
        if way is None or target is None:
            way, target = self._way_of_claimant(job)
        return way.find(self._twilio, target, chain, job.event.message_sid)

    def _way_of_claimant(self, job: RetryJob) -> tuple[Way, Target]:
        """How a claim from before intents were recorded would have sent this failure's
        attempt, as that version guessed it: the way the policy's rule for the code gives (an
        SMS fallback's conversation is found by the recipient's number)."""
        event = job.event
        rule = self._policy.rule_for(event.error_code)
        address: str | None = None
        way: Way = Same()
        if rule is not None and rule.action == "fallback_sms":
            address = self._address(job)
            way = way_for(Send("fallback_sms", None, rule.sms_from), address)
        return way, Target(event.chat_service_sid, event.conversation_sid, address)

    def _queue_follow_up(self, chain: Chain, sent: Sent, retry_of: DeliveryEvent, now: int) -> None:
        due = now + self._follow_up
        follow_up = FollowUp(
            sent.sid,
            chain.root,
            chain.attempt,
            due,
            sent.conversation_sid,  # the failed one's, or an SMS fallback's own
            retry_of.chat_service_sid,  # every way sends in the failed message's service
            retry_of.account_sid,
            retry_of.error_code,
        )
        self._queue.send(follow_up, self._follow_up)


def _made(attempt: Attempt, message: MessageSnapshot, retry_of: str) -> bool:
    """Whether `attempt` is the one `message` was created for: sent as it, or claimed for the
    failure its marker names, where the claim's intent says, since the claim."""
    if attempt.state is AttemptState.SENT:
        return attempt.new_message_sid == message.sid
    if attempt.state is not AttemptState.CLAIMED or attempt.failed_message_sid != retry_of:
        return False
    intent = attempt.intent
    if intent is not None and intent.conversation_sid != message.conversation_sid:
        return False  # (a claim from before intents names no conversation: retry_of decides)
    created = message.date_created
    return created is None or created.timestamp() >= attempt.claimed_at - CLOCK_SKEW_SECONDS
