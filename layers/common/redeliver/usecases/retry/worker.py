"""The retry use case: one failure in, a new message out, exactly once (DESIGN invariants 4-6).

For each job (a receipt that became a failure):

1. first receipt of the job: clear its outbox mark (SQS holds it from now on); not due yet → put
   it back on the queue for the rest of the wait (SQS delays ≤ 15 min: hops);
2. re-read the message's partition: if the receipt has moved on (delivered, or a newer failure
   with its own job), stop; resolve the chain (a failed retry continues its root's count);
3. ask the policy with what is known: wait, or give up if the chain is linked (ORIGIN), or go on;
4. fetch the message from Twilio; its marker names the chain of a retry whose ORIGIN link is not
   written yet, when the table agrees (that root's attempt is claimed for, or sent as, this
   message: DESIGN invariant 9; any other marker, copied or malformed, proves nothing and the
   message is its own root); ask the policy again with the recipients and overrides;
   with policy v2, also the recipient's address (the failed receipt's participant): a suppressed
   recipient gives up here, a `suppress` rule suppresses it, quiet hours may make it wait;
5. claim the attempt: one transaction that also checks the receipt is still this failure, and
   records the intent (DESIGN invariant 8): the way of sending, the Conversation Service, the
   target conversation (an SMS fallback: the unique name of the one it would create, the sender,
   the recipient's hash; its conversation is written on the claim before the message create);
6. create the new message, marked with its origin, the way the rule says (retry/sending/:
   the same content, a Content template, SMS in another conversation); record it, linked both
   ways. Every way goes through the same claim, marker, record and stale-claim search.

A sent attempt queues its follow-up, which asks Twilio whether the retry reached its recipient
once `follow_up_seconds` have passed (follow_up.py).

Where a crash or a redelivered record can land, and why it sends at most once:
- after 5 (claim) or during 6 (a create that timed out): the claim stays `claimed`. A record that
  meets it resolves it by the intent recorded on it (claims.py): a younger claim sends the record
  back to SQS; a stale one's message is searched for where its intent says: found → recorded;
  not found → the claim is taken over, and this worker sends.
- after 6, before the record: the same search finds the message and records it.
- a give-up that meets another worker's claim goes the same way: only the claimant, or nobody,
  may record a give-up, since a claim may have sent (claims.py).
- after 6, after the record, before the follow-up is queued (or SQS refused it): the record
  comes back, finds the attempt `sent` (a duplicate) and queues the follow-up again (claims.py).
  So a follow-up may run more than once; follow_up.py says why that is harmless.
- Twilio answered 429 or never connected: nothing was sent, the claim is released and the record
  goes back to SQS; after maxReceiveCount it lands in the DLQ (alarmed), never silence.

A record that goes back to the queue (`RetryLater`), and when it is seen again: outcomes.py.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from redeliver.adapters.dynamodb.attempts import Attempts, Claim
from redeliver.adapters.dynamodb.outbox import Outbox
from redeliver.adapters.dynamodb.outcome_events import OutcomeEventItems
from redeliver.adapters.dynamodb.suppressions import Suppressions
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import ConversationsGateway, TwilioError
from redeliver.domain.chain import CannotResend, Chain, MessageSnapshot, NewMessage
from redeliver.domain.jobs import FollowUp, RetryJob, parse_job
from redeliver.domain.policy import (
    GiveUp,
    Jitter,
    Overrides,
    RetryPolicy,
    Send,
    Suppress,
    Wait,
    stable_jitter,
)
from redeliver.domain.receipts import SUCCESS_STATUSES
from redeliver.observability import count, logger
from redeliver.settings import ConfigurationError
from redeliver.usecases.recorder import Recorder
from redeliver.usecases.retry.checks import Checks
from redeliver.usecases.retry.claims import Claims
from redeliver.usecases.retry.follow_up import FollowUps
from redeliver.usecases.retry.outcomes import (
    AWS_FAULT_SECONDS,
    THROTTLED_SECONDS,
    Outcome,
    Result,
    RetryLater,
    Timing,
    back_to_the_queue,
    job_fields,
    record_budget_seconds,
    report,
)
from redeliver.usecases.retry.sending import Refused, Target, Way, way_for


class RetryWorker:
    """The orchestrator: one SQS record through the steps above. What it asks before a send is
    in `Checks`, a claim in its way and what only a claimant records in `Claims`, the ways of
    sending in `sending/`, the follow-up of a sent retry in `FollowUps`."""

    def __init__(
        self,
        attempts: Attempts,
        outbox: Outbox,
        queue: RetryQueue,
        twilio: ConversationsGateway,
        policy: RetryPolicy,
        *,
        suppressions: Suppressions,
        recorder: Recorder,
        claim_stale_seconds: int,
        twilio_timeout_seconds: float = 10,
        function_timeout_seconds: int | None = None,
        follow_up_seconds: int = 900,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float, float], float] = random.uniform,
        policy_jitter: Jitter = stable_jitter,
        events: OutcomeEventItems | None = None,
    ) -> None:
        """`events`: outcome events on (the stack's EventBusName): each decision's event item is
        written in the transaction that records it (adapters/dynamodb/outcome_events.py)."""
        self._attempts = attempts
        self._outbox = outbox
        self._queue = queue
        self._twilio = twilio
        self._policy = policy
        self._budget = record_budget_seconds(twilio_timeout_seconds)
        if function_timeout_seconds is not None and self._budget >= function_timeout_seconds:
            # No invocation could ever start a record: each would be deferred (queued again)
            # forever, neither decided nor in the DLQ. Fail the deployment's first invocation.
            raise ConfigurationError(
                f"a record may need {self._budget} s (TWILIO_TIMEOUT_SECONDS="
                f"{twilio_timeout_seconds:g}), more than RETRY_TIMEOUT_SECONDS="
                f"{function_timeout_seconds}"
            )
        self._timing = Timing(clock, jitter, policy_jitter)
        self._follow_ups = FollowUps(
            attempts,
            queue,
            twilio,
            recorder,
            self._timing,
            follow_up_seconds=follow_up_seconds,
            events=events,
        )
        self._checks = Checks(twilio, policy, self._timing)
        self._claims = Claims(
            attempts,
            queue,
            twilio,
            policy,
            self._timing,
            stale_seconds=claim_stale_seconds,
            follow_up_seconds=follow_up_seconds,
            address=self._checks.address,
            events=events,
        )
        self._suppressions = suppressions

    def process_record(
        self, body: str, receipt_handle: str = "", seconds_left: float = math.inf
    ) -> Result:
        """One SQS record. Raising reports it failed (SQS redelivers it, then the DLQ takes it);
        first it is given the visibility its reason needs, and counted and logged."""
        job: RetryJob | FollowUp | None = None
        try:
            job = parse_job(body)
            if seconds_left < self._budget:
                return self._defer(job, seconds_left)
            if isinstance(job, FollowUp):
                return self._follow_ups.follow_up(job)
            return self.process(job)
        except Exception as error:
            back_to_the_queue(self._queue, self._timing, error, job, receipt_handle)
            raise

    def _defer(self, job: RetryJob | FollowUp, seconds_left: float) -> Result:
        """Not started for lack of time: the job goes back to the queue as a new message, and
        this record succeeds. Reported failed, it would cost a receive it never used; in a storm
        a job can sit at the tail of batch after batch, and after maxReceiveCount a healthy one
        would land in the DLQ, never tried. (A failed send raises: the record itself goes back.)"""
        self._queue.send(job)
        logger.info(
            "retry job deferred: no time left",
            extra={**job_fields(job), "seconds_left": round(seconds_left), "needs": self._budget},
        )
        return Result(Outcome.WAITING, "deferred")

    def process(self, job: RetryJob) -> Result:
        now = self._timing.clock()
        event = job.event
        log: dict[str, object] = {
            "message_sid": event.message_sid,
            "receipt_sid": event.receipt_sid,
            "conversation_sid": event.conversation_sid,
            "error_code": event.error_code,
        }
        if job.due_at is None:
            # The worker has the job: from here SQS holds it (redelivery, then the DLQ), so the
            # outbox mark goes now, before any decision. A job that then waits in the queue (a
            # delay, another worker's claim, a 429) is not re-queued by the sweeper, and
            # OutboxSwept means only that an enqueue was lost.
            self._outbox.clear_pending(event)
            if self._policy.unmapped(event.error_code):  # once per failure, not per hop
                count("UnmappedErrorCode")
                logger.warning(
                    "error code matched only the '*' rule: give it a rule of its own",
                    extra={**log, "rule": "*"},
                )
        elif job.due_at > now:
            self._queue.send(job, delay_seconds=int(job.due_at - now))
            return report(Result(Outcome.WAITING, "hop"), log)

        record = self._attempts.load_message(event.message_sid)
        receipt = record.receipts.get(event.receipt_sid)
        if receipt is None or (receipt.order_key, receipt.status) != (
            event.order_key,
            event.status,
        ):
            recovered = receipt is not None and receipt.status in SUCCESS_STATUSES
            return report(Result(Outcome.SKIPPED, "recovered" if recovered else "superseded"), log)
        chain = Chain.of(event.message_sid, record.origin, event.date_created)
        linked = record.origin is not None
        return report(self._decide(job, chain, now, linked=linked), log)

    # -- the decision, with what is known and then with the message ---------------------------

    def _decide(self, job: RetryJob, chain: Chain, now: float, *, linked: bool) -> Result:
        """`linked`: the chain comes from the message's ORIGIN link. Without one, the message may
        still be a retry whose link is not written yet (its worker is between create and record,
        or died there): only its marker can tell, so nothing is recorded before the fetch."""
        event = job.event
        decision = self._checks.ask_policy(job, chain, now)
        if isinstance(decision, Wait) or (isinstance(decision, GiveUp) and linked):
            return self._wait_or_give_up(job, chain, decision, now)

        try:
            message = self._twilio.fetch_message(
                event.chat_service_sid, event.conversation_sid, event.message_sid
            )
        except TwilioError as error:
            if error.kind == "not_found":  # gone, marker and all: recorded under what is known
                return self._claims.give_up(chain, job, "message_not_found", now)
            raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS), chain) from error

        marked = chain if linked else self._claims.marked_chain(message, chain)
        if marked != chain:  # a retry without its ORIGIN link: its marker, the table agreeing
            chain = marked
            decision = self._checks.ask_policy(job, chain, now)
        if isinstance(decision, Suppress):
            return self._suppress(job, chain, decision, now)
        if not isinstance(decision, Send):
            return self._wait_or_give_up(job, chain, decision, now)
        return self._decide_with_message(job, chain, message, now)

    def _decide_with_message(
        self, job: RetryJob, chain: Chain, message: MessageSnapshot, now: float
    ) -> Result:
        """The last look before a send: recipients, overrides, the recipient's address.

        The recipients are the conversation's members now, not the original's `delivery.total`:
        a new message goes to whoever is in the conversation when it is created, and someone who
        joined since would receive another person's message (a one-time code, say)."""
        event = job.event
        recipients, address, present = self._checks.members(job, message.author)
        if not present:  # the new message would reach only others: some got the original
            return self._claims.give_up(chain, job, "recipient_left", now)
        overrides = Overrides.from_attributes(message.attributes)
        if address is not None and self._suppressions.get(address, int(now)) is not None:
            return self._claims.give_up(chain, job, "recipient_suppressed", now)
        decision = self._checks.ask_policy(
            job, chain, now, recipients=recipients, overrides=overrides, address=address, known=True
        )
        if isinstance(decision, Suppress):
            return self._suppress(job, chain, decision, now, address)
        if not isinstance(decision, Send):
            return self._wait_or_give_up(job, chain, decision, now)

        way = way_for(decision, address, groups=self._policy.group_conversations == "allow")
        outgoing = way.prepare(message, chain)
        if isinstance(outgoing, CannotResend):
            return self._claims.give_up(chain, job, outgoing.reason, now)
        target = Target(event.chat_service_sid, event.conversation_sid, address)
        return self._send(job, chain, outgoing, now, way=way, target=target)

    def _suppress(
        self,
        job: RetryJob,
        chain: Chain,
        decision: Suppress,
        now: float,
        address: str | None = None,
    ) -> Result:
        """No resend; the recipient is suppressed (a hash of its number) for `decision.days`,
        in the transaction that records the give-up: only by the decision that records it."""
        address = address or self._checks.address(job)
        if address is None:  # a chat participant, or one removed since: nothing to suppress
            return self._claims.give_up(chain, job, "suppress_no_address", now)
        suppression = self._suppressions.suppression(
            address, decision.days, job.event.error_code, int(now)
        )
        also = [suppression, *self._claims.suppressed_event(chain, job, now)]
        return self._claims.give_up(chain, job, "suppressed", now, also=also)

    def _wait_or_give_up(
        self, job: RetryJob, chain: Chain, decision: Wait | GiveUp, now: float
    ) -> Result:
        if isinstance(decision, GiveUp):
            return self._claims.give_up(chain, job, decision.reason, now)
        due = math.ceil(decision.due_at.timestamp())  # a jittered due is fractional: not early
        self._queue.send(job.due(due), delay_seconds=decision.seconds)
        return Result(Outcome.WAITING, f"{decision.seconds}s", chain=chain)

    # -- claim, send, record -------------------------------------------------------------------

    def _send(
        self,
        job: RetryJob,
        chain: Chain,
        outgoing: NewMessage,
        now: float,
        *,
        way: Way,
        target: Target,
    ) -> Result:
        event = job.event
        claimed_at = int(now)
        intent = way.intent(target, chain)  # on the claim, before any create (invariant 8)
        claim = self._attempts.claim(chain, event, claimed_at, intent)
        if claim is Claim.SUPERSEDED:
            return Result(Outcome.SKIPPED, "superseded", chain=chain)
        if claim is Claim.TAKEN:
            existing = self._attempts.get_attempt(chain.root, chain.attempt)
            resumed = self._claims.resume(
                job, chain, existing, now, way=way, target=target, mine=intent
            )
            if resumed is not None:
                return resumed

        def note(conversation_sid: str) -> None:
            """An SMS fallback's conversation, on the claim before the message create."""
            if not self._attempts.claim_conversation(chain, claimed_at, conversation_sid):
                raise RetryLater(
                    "the claim was taken over", self._timing.soon(AWS_FAULT_SECONDS), chain
                )

        try:
            sent = way.create(self._twilio, target, outgoing, chain, note)
        except Refused as refused:  # nothing created: given up under our claim
            return self._claims.give_up(chain, job, refused.reason, now, claimed_at)
        except TwilioError as error:
            if error.kind == "transient":
                self._attempts.release(chain, claimed_at)
                raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS), chain) from error
            if error.kind == "ambiguous":  # maybe sent: the claim stays for the marker search
                raise RetryLater(str(error), self._claims.until_stale(claimed_at), chain) from error
            reason = (
                "conversation_not_found"
                if error.kind == "not_found"
                else (f"twilio_rejected_{error.code or error.status}")
            )
            return self._claims.give_up(chain, job, reason, now, claimed_at)  # under our claim
        self._claims.record_sent(chain, sent, event, way.name)
        return Result(Outcome.SENT, way.name, new_message_sid=sent.sid, chain=chain)
