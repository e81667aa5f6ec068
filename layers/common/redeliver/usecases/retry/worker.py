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

The follow-up asks Twilio's Receipts API about the retry once `follow_up_seconds` have passed, and
records every receipt it reports through the webhook's path (`Recorder`): Twilio does not retry
webhooks, so a failed retry whose webhook never came is queued all the same and continues its
chain (its ORIGIN link is written before the follow-up is queued). The verdict, RetryRecovered /
RetryNotRecovered / RetryUnconfirmed, is Twilio's answer. It records as `Source.FOLLOW_UP`: a
failure found so is counted FollowUpFailures, not ReconciledFailures (that alarm means webhooks
are lost; a REST-created retry may get no webhook at all).

Where a crash or a redelivered record can land, and why it sends at most once:
- after 5 (claim) or during 6 (a create that timed out): the claim stays `claimed`. A worker that
  finds a claim older than any function run (`claim_stale_seconds`) looks for the attempt's
  marker where the claim's intent says, never where today's policy would send (it may have been
  redeployed): found → record it; not found → take the claim over (with its own intent), send.
  A claim that names no conversation yet (an SMS fallback before its lookup) created nothing.
  A younger claim means another worker may be sending now: the record goes back to SQS.
- after 6, before the record: the same marker search finds the message and records it. It
  reads newest first back to the claim's time (the retry is newer; `CLOCK_SKEW_SECONDS` more);
  a conversation so busy that its limit runs out first proves nothing, and the job goes back
  (then to the DLQ). A claim from before intents were recorded is searched for as then: where
  this worker (or the policy's rule for the code) would send, back to the failed message.
- a give-up that meets another worker's claim goes the same way: only the claimant, or nobody,
  may record a give-up, since a claim may have sent; it searches where the claim's intent says,
  whatever its own code's rule is.
- after 6, after the record, before the follow-up is queued (or SQS refused it): the record
  comes back, finds the attempt `sent` (a duplicate) and queues the follow-up again. So a
  follow-up may run more than once: each records Twilio's truth (idempotent), and the verdict is
  counted once per attempt (`followed_up_at`, one conditional UpdateItem per follow-up).
- Twilio answered 429 or never connected: nothing was sent, the claim is released and the record
  goes back to SQS; after maxReceiveCount it lands in the DLQ (alarmed), never silence.

A record that goes back to the queue (`RetryLater`), and when it is seen again: outcomes.py.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from redeliver.adapters.dynamodb.store import Claim, ReceiptStore
from redeliver.adapters.dynamodb.suppressions import Suppressions
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import (
    ConversationsGateway,
    MarkerSearchInconclusive,
    TwilioError,
)
from redeliver.domain.chain import (
    Attempt,
    AttemptState,
    CannotResend,
    Chain,
    Intent,
    MessageSnapshot,
    NewMessage,
    marker_of,
)
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
from redeliver.domain.receipts import FAILURE_STATUSES, SUCCESS_STATUSES, DeliveryEvent
from redeliver.observability import count, logger
from redeliver.settings import ConfigurationError
from redeliver.usecases.reconcile import Target as Lookup
from redeliver.usecases.reconcile import record_reported
from redeliver.usecases.recorder import Recorder, Source
from redeliver.usecases.retry.checks import Checks
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
from redeliver.usecases.retry.sending import Refused, Sent, Target, Way, find_intended, way_for
from redeliver.usecases.retry.sending.same import Same

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# A message created after its claim may still be dated by Twilio before the claim's time (taken
# from the worker's clock, to the second): the stale-claim search reads back this much further.
CLOCK_SKEW_SECONDS = 60


class RetryWorker:
    def __init__(
        self,
        store: ReceiptStore,
        queue: RetryQueue,
        twilio: ConversationsGateway,
        policy: RetryPolicy,
        *,
        suppressions: Suppressions,
        claim_stale_seconds: int,
        twilio_timeout_seconds: float = 10,
        function_timeout_seconds: int | None = None,
        follow_up_seconds: int = 900,
        recorder: Recorder | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float, float], float] = random.uniform,
        policy_jitter: Jitter = stable_jitter,
    ) -> None:
        self._store = store
        self._queue = queue
        self._twilio = twilio
        self._policy = policy
        self._stale = claim_stale_seconds
        self._budget = record_budget_seconds(twilio_timeout_seconds)
        if function_timeout_seconds is not None and self._budget >= function_timeout_seconds:
            # No invocation could ever start a record: each would be deferred (queued again)
            # forever, neither decided nor in the DLQ. Fail the deployment's first invocation.
            raise ConfigurationError(
                f"a record may need {self._budget} s (TWILIO_TIMEOUT_SECONDS="
                f"{twilio_timeout_seconds:g}), more than RETRY_TIMEOUT_SECONDS="
                f"{function_timeout_seconds}"
            )
        self._follow_up = follow_up_seconds
        self._recorder = recorder or Recorder(store, queue)
        self._timing = Timing(clock, jitter, policy_jitter)
        self._checks = Checks(twilio, policy, self._timing)
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
                return self.follow_up(job)
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

    def follow_up(self, job: FollowUp) -> Result:
        """Did a retry we sent reach its recipient? Twilio's receipts say, once they had time;
        each is recorded as a webhook's would be, so a failed retry is queued for the next
        attempt. Twilio not answering now (429, 5xx): the job comes back in a few seconds."""
        now = self._timing.clock()
        log: dict[str, object] = {
            "message_sid": job.message_sid,
            "root": job.root,
            "attempt": job.attempt,
        }
        if job.due_at > now:
            self._queue.send(job, delay_seconds=int(job.due_at - now))
            return Result(Outcome.WAITING, "follow-up hop")
        if not job.conversation_sid:
            # Queued before follow-ups carried their conversation: Twilio cannot be asked, so
            # what the webhooks told us decides, as it did then.
            record = self._store.load_message(job.message_sid)
            statuses = {r.status for r in record.receipts.values()}
            log["source"] = "table"
        else:
            target = Lookup(job.message_sid, job.conversation_sid, job.chat_service_sid)
            try:
                found = record_reported(self._twilio, self._recorder, target, Source.FOLLOW_UP)
            except TwilioError as error:
                if error.kind in ("transient", "ambiguous"):
                    raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS)) from error
                # Gone (404) or refused for good: nothing more can be learnt. Counted, not lost.
                found = []
                log["twilio_error"] = error.kind
            statuses = {f.event.status for f in found}
            log["source"] = "twilio"
        if statuses & SUCCESS_STATUSES:
            verdict = "RetryRecovered"
        elif statuses & FAILURE_STATUSES:
            verdict = "RetryNotRecovered"  # its own failure job decides what comes next
        else:
            verdict = "RetryUnconfirmed"  # no receipt beyond `sent` (or none at all) yet
        # Once per attempt: a follow-up may run twice (SQS, or queued again by _resume).
        if self._store.mark_followed_up(job.root, job.attempt, int(now)):
            count(verdict)
        else:
            log["counted"] = False  # another copy of this follow-up judged it already
        logger.info("retry followed up", extra={**log, "verdict": verdict})
        return Result(Outcome.FOLLOWED_UP, verdict)

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
            self._store.clear_pending(event)
            if self._policy.unmapped(event.error_code):  # once per failure, not per hop
                count("UnmappedErrorCode")
                logger.warning(
                    "error code matched only the '*' rule: give it a rule of its own",
                    extra={**log, "rule": "*"},
                )
        elif job.due_at > now:
            self._queue.send(job, delay_seconds=int(job.due_at - now))
            return report(Result(Outcome.WAITING, "hop"), log)

        record = self._store.load_message(event.message_sid)
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
                return self._give_up(chain, job, "message_not_found", now)
            raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS), chain) from error

        marked = chain if linked else self._marked_chain(message, chain)
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
            return self._give_up(chain, job, "recipient_left", now)
        overrides = Overrides.from_attributes(message.attributes)
        if address is not None and self._suppressions.get(address, int(now)) is not None:
            return self._give_up(chain, job, "recipient_suppressed", now)
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
            return self._give_up(chain, job, outgoing.reason, now)
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
            return self._give_up(chain, job, "suppress_no_address", now)
        suppression = self._suppressions.suppression(
            address, decision.days, job.event.error_code, int(now)
        )
        return self._give_up(chain, job, "suppressed", now, also=[suppression])

    def _marked_chain(self, message: MessageSnapshot, chain: Chain) -> Chain:
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
        attempt = self._store.get_attempt(root, number)
        if attempt is None or not _made(attempt, message, retry_of):
            logger.info(
                "marker not trusted: the table does not agree",
                extra={"message_sid": message.sid, "root": root, "attempt": number},
            )
            return chain
        return Chain(root, number + 1, attempt.first_sent_at or chain.first_sent_at)

    def _wait_or_give_up(
        self, job: RetryJob, chain: Chain, decision: Wait | GiveUp, now: float
    ) -> Result:
        if isinstance(decision, GiveUp):
            return self._give_up(chain, job, decision.reason, now)
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
        claim = self._store.claim(chain, event, claimed_at, intent)
        if claim is Claim.SUPERSEDED:
            return Result(Outcome.SKIPPED, "superseded", chain=chain)
        if claim is Claim.TAKEN:
            existing = self._store.get_attempt(chain.root, chain.attempt)
            resumed = self._resume(job, chain, existing, now, way=way, target=target, mine=intent)
            if resumed is not None:
                return resumed

        def note(conversation_sid: str) -> None:
            """An SMS fallback's conversation, on the claim before the message create."""
            if not self._store.claim_conversation(chain, claimed_at, conversation_sid):
                raise RetryLater(
                    "the claim was taken over", self._timing.soon(AWS_FAULT_SECONDS), chain
                )

        try:
            sent = way.create(self._twilio, target, outgoing, chain, note)
        except Refused as refused:  # nothing created: given up under our claim
            return self._give_up(chain, job, refused.reason, now, claimed_at)
        except TwilioError as error:
            if error.kind == "transient":
                self._store.release(chain, claimed_at)
                raise RetryLater(str(error), self._timing.soon(THROTTLED_SECONDS), chain) from error
            if error.kind == "ambiguous":  # maybe sent: the claim stays for the marker search
                raise RetryLater(str(error), self._until_stale(claimed_at), chain) from error
            reason = (
                "conversation_not_found"
                if error.kind == "not_found"
                else (f"twilio_rejected_{error.code or error.status}")
            )
            return self._give_up(chain, job, reason, now, claimed_at)  # under our claim
        self._sent(chain, sent, event)
        return Result(Outcome.SENT, way.name, new_message_sid=sent.sid, chain=chain)

    def _resume(
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
            seconds = self._until_stale(existing.claimed_at)
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
            self._sent(chain, found, job.event)
            return Result(Outcome.SENT, "found after an interrupted send", found.sid, chain=chain)
        if not self._store.take_over(chain, existing.claimed_at, int(now), mine):
            seconds = self._until_stale(int(now))
            raise RetryLater("another worker took the stale claim", seconds, chain)
        return None

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
            address = self._checks.address(job)
            way = way_for(Send("fallback_sms", None, rule.sms_from), address)
        return way, Target(event.chat_service_sid, event.conversation_sid, address)

    def _sent(self, chain: Chain, sent: Sent, retry_of: DeliveryEvent) -> None:
        # The ORIGIN link is written first: a failure the follow-up finds continues the chain.
        # A crash (or an SQS error) between the record and the queued follow-up: the record
        # comes back, finds the attempt `sent`, and `_resume` queues the follow-up again.
        now = int(self._timing.clock())
        self._store.record_sent(chain, sent.sid, retry_of.message_sid, now, sent.conversation_sid)
        self._queue_follow_up(chain, sent, retry_of, now)

    def _queue_follow_up(self, chain: Chain, sent: Sent, retry_of: DeliveryEvent, now: int) -> None:
        due = now + self._follow_up
        follow_up = FollowUp(
            sent.sid,
            chain.root,
            chain.attempt,
            due,
            sent.conversation_sid,  # the failed one's, or an SMS fallback's own
            retry_of.chat_service_sid,  # every way sends in the failed message's service
        )
        self._queue.send(follow_up, self._follow_up)

    def _give_up(
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
        claim may have sent, so a give-up that meets it goes the way a send does (`_resume`).
        `also`: what this decision writes with its give-up, and only if it records it."""
        for _ in range(2):
            in_the_way = self._store.record_give_up(
                chain, job.event, reason, int(now), claimed_at, also=also
            )
            if in_the_way is None:
                return Result(Outcome.GAVE_UP, reason, chain=chain)
            resumed = self._resume(job, chain, in_the_way, now)
            if resumed is not None:
                return resumed
            claimed_at = int(now)  # the stale claim is ours now, and its message never went out
        raise RetryLater(
            "the attempt's claim keeps changing", self._timing.soon(AWS_FAULT_SECONDS), chain
        )

    def _until_stale(self, claimed_at: int) -> int:
        """Seconds until a claim made at `claimed_at` is stale (then the marker search decides)."""
        return max(1, math.ceil(claimed_at + self._stale - self._timing.clock()) + 1)


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
