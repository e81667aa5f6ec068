"""The retry use case: one failure in, a new message out, exactly once (DESIGN invariants 4-6).

For each job (a receipt that became a failure):

1. not due yet → put it back on the queue for the rest of the wait (SQS delays ≤ 15 min: hops);
2. re-read the message's partition: if the receipt has moved on (delivered, or a newer failure
   with its own job), stop; resolve the chain (a failed retry continues its root's count);
3. ask the policy with what is known: give up, wait, or go on;
4. fetch the message from Twilio, ask the policy again with its recipients and overrides;
5. claim the attempt: one transaction that also checks the receipt is still this failure;
6. create the new message, marked with its origin; record it, linked both ways.

Where a crash or a redelivered record can land, and why it sends at most once:
- after 5 (claim) or during 6 (a create that timed out): the claim stays `claimed`. A worker that
  finds a claim older than any function run (`claim_stale_seconds`) looks in the conversation for
  the attempt's marker before sending: found → record it; not found → take the claim over, send.
  A younger claim means another worker may be sending now: the record goes back to SQS.
- after 6, before the record: the same marker search finds the message and records it.
- Twilio answered 429/5xx or never connected: nothing was sent, the claim is released and the
  record goes back to SQS; after maxReceiveCount it lands in the DLQ (alarmed), never silence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from redeliver.chain import (
    Attempt,
    AttemptState,
    CannotResend,
    Chain,
    NewMessage,
    marker_chain,
    new_message,
)
from redeliver.conversations import ConversationsGateway, TwilioError
from redeliver.jobs import FollowUp, RetryJob, parse_job
from redeliver.observability import count, count_by, logger, reason_value
from redeliver.policy import Failure, GiveUp, Overrides, RetryPolicy, Send, Wait, decide
from redeliver.receipts import FAILURE_STATUSES, SUCCESS_STATUSES
from redeliver.retry_queue import RetryQueue
from redeliver.store import Claim, ReceiptStore


class Outcome(StrEnum):
    SENT = "sent"
    WAITING = "waiting"
    GAVE_UP = "gave_up"
    SKIPPED = "skipped"  # the receipt moved on: delivered since, or a newer failure decides
    DUPLICATE = "duplicate"  # this attempt was decided by another record already
    FOLLOWED_UP = "followed_up"  # a sent retry's outcome was counted


class RetryLater(Exception):
    """The record must come back (SQS redelivery): a transient fault or another worker's claim."""


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    new_message_sid: str = ""
    chain: Chain | None = None


class RetryWorker:
    def __init__(
        self,
        store: ReceiptStore,
        queue: RetryQueue,
        twilio: ConversationsGateway,
        policy: RetryPolicy,
        *,
        claim_stale_seconds: int,
        follow_up_seconds: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._twilio = twilio
        self._policy = policy
        self._stale = claim_stale_seconds
        self._follow_up = follow_up_seconds
        self._clock = clock

    def process_body(self, body: str) -> Result:
        """One SQS record. Raising sends it back to the queue (then to the DLQ): counted here."""
        try:
            job = parse_job(body)
            if isinstance(job, FollowUp):
                return self.follow_up(job)
            return self.process(job)
        except Exception as error:
            count("RetryError")
            if isinstance(error, RetryLater):
                logger.warning("retry job back to the queue", extra={"reason": str(error)})
            else:
                logger.exception("retry job failed")
            raise

    def follow_up(self, job: FollowUp) -> Result:
        """Did a retry we sent reach its recipient? Counted once its receipts had time."""
        now = self._clock()
        log: dict[str, object] = {
            "message_sid": job.message_sid,
            "root": job.root,
            "attempt": job.attempt,
        }
        if job.due_at > now:
            self._queue.send(job, delay_seconds=int(job.due_at - now))
            return Result(Outcome.WAITING, "follow-up hop")
        statuses = {r.status for r in self._store.load_message(job.message_sid).receipts.values()}
        if statuses & SUCCESS_STATUSES:
            verdict = "RetryRecovered"
        elif statuses & FAILURE_STATUSES:
            verdict = "RetryNotRecovered"  # its own failure job decides what comes next
        else:
            verdict = "RetryUnconfirmed"  # no receipt beyond `sent` yet
        count(verdict)
        logger.info("retry followed up", extra={**log, "verdict": verdict})
        return Result(Outcome.FOLLOWED_UP, verdict)

    def process(self, job: RetryJob) -> Result:
        now = self._clock()
        event = job.event
        log: dict[str, object] = {
            "message_sid": event.message_sid,
            "receipt_sid": event.receipt_sid,
            "conversation_sid": event.conversation_sid,
            "error_code": event.error_code,
        }
        if job.due_at is not None and job.due_at > now:
            self._queue.send(job, delay_seconds=int(job.due_at - now))
            return self._report(Result(Outcome.WAITING, "hop"), log)

        record = self._store.load_message(event.message_sid)
        receipt = record.receipts.get(event.receipt_sid)
        if receipt is None or (receipt.order_key, receipt.status) != (
            event.order_key,
            event.status,
        ):
            recovered = receipt is not None and receipt.status in SUCCESS_STATUSES
            return self._report(
                Result(Outcome.SKIPPED, "recovered" if recovered else "superseded"), log
            )
        chain = Chain.of(event.message_sid, record.origin, event.date_created)
        result = self._decide(job, chain, now)
        if job.due_at is None:  # the first look at this failure: the outbox mark can go
            self._store.clear_pending(event)
        return self._report(result, log)

    # -- the decision, with what is known and then with the message ---------------------------

    def _decide(self, job: RetryJob, chain: Chain, now: float) -> Result:
        event = job.event
        failure = Failure(event.error_code, chain.attempt, event.date_updated, chain.first_sent_at)
        first = self._apply_policy(job, chain, failure, now)
        if first is not None:
            return first

        try:
            message = self._twilio.fetch_message(
                event.chat_service_sid, event.conversation_sid, event.message_sid
            )
        except TwilioError as error:
            if error.kind == "not_found":
                return self._give_up(chain, job, "message_not_found", now)
            raise RetryLater(str(error)) from error

        marked = marker_chain(message)
        if marked is not None and (marked[0], marked[1] + 1) != (chain.root, chain.attempt):
            # The message is a retry whose ORIGIN link was not written (its worker died between
            # create and record): its marker is the truth.
            origin_attempt = self._store.get_attempt(*marked)
            first_sent = origin_attempt.first_sent_at if origin_attempt else None
            chain = Chain(marked[0], marked[1] + 1, first_sent or chain.first_sent_at)
        recipients = message.recipients
        if recipients is None:
            recipients = self._twilio.recipients(event.chat_service_sid, event.conversation_sid)
        failure = Failure(
            event.error_code,
            chain.attempt,
            event.date_updated,
            chain.first_sent_at,
            recipients,
            Overrides.from_attributes(message.attributes),
        )
        second = self._apply_policy(job, chain, failure, now)
        if second is not None:
            return second

        outgoing = new_message(message, chain)
        if isinstance(outgoing, CannotResend):
            return self._give_up(chain, job, outgoing.reason, now)
        return self._send(job, chain, outgoing, now)

    def _apply_policy(
        self, job: RetryJob, chain: Chain, failure: Failure, now: float
    ) -> Result | None:
        decision = decide(self._policy, failure, datetime.fromtimestamp(now, UTC))
        if isinstance(decision, GiveUp):
            return self._give_up(chain, job, decision.reason, now)
        if isinstance(decision, Wait):
            due = int(decision.due_at.timestamp())
            self._queue.send(job.due(due), delay_seconds=decision.seconds)
            return Result(Outcome.WAITING, f"{decision.seconds}s", chain=chain)
        assert isinstance(decision, Send)
        return None

    # -- claim, send, record -------------------------------------------------------------------

    def _send(self, job: RetryJob, chain: Chain, outgoing: NewMessage, now: float) -> Result:
        event = job.event
        claimed_at = int(now)
        claim = self._store.claim(chain, event, claimed_at)
        if claim is Claim.SUPERSEDED:
            return Result(Outcome.SKIPPED, "superseded", chain=chain)
        if claim is Claim.TAKEN:
            existing = self._store.get_attempt(chain.root, chain.attempt)
            resumed = self._resume(job, chain, existing, now)
            if resumed is not None:
                return resumed
        try:
            new_sid = self._twilio.create_message(
                event.chat_service_sid, event.conversation_sid, outgoing
            )
        except TwilioError as error:
            if error.kind == "transient":
                self._store.release(chain, claimed_at)
                raise RetryLater(str(error)) from error
            if error.kind == "ambiguous":  # maybe sent: the claim stays for the marker search
                raise RetryLater(str(error)) from error
            reason = (
                "conversation_not_found"
                if error.kind == "not_found"
                else (f"twilio_rejected_{error.code or error.status}")
            )
            return self._give_up(chain, job, reason, now)
        self._sent(chain, new_sid, event.message_sid)
        return Result(Outcome.SENT, new_message_sid=new_sid, chain=chain)

    def _resume(
        self, job: RetryJob, chain: Chain, existing: Attempt | None, now: float
    ) -> Result | None:
        """Another record got to this attempt first. None: this worker may send after all."""
        if existing is None:  # released in between (a transient failure): try again later
            raise RetryLater("attempt claim changed under us")
        if existing.state is not AttemptState.CLAIMED:
            return Result(
                Outcome.DUPLICATE,
                existing.state.value,
                new_message_sid=existing.new_message_sid,
                chain=chain,
            )
        if now - existing.claimed_at < self._stale:
            raise RetryLater("another worker holds the claim")
        # A stale claim: its worker died, or its create timed out. Did the message go out?
        try:
            found = self._twilio.find_retry(
                job.event.chat_service_sid, job.event.conversation_sid, chain.root, chain.attempt
            )
        except TwilioError as error:
            raise RetryLater(str(error)) from error
        if found is not None:
            self._sent(chain, found, job.event.message_sid)
            return Result(Outcome.SENT, "found after an interrupted send", found, chain=chain)
        if not self._store.take_over(chain, existing.claimed_at, int(now)):
            raise RetryLater("another worker took the stale claim")
        return None

    def _sent(self, chain: Chain, new_sid: str, retry_of: str) -> None:
        # The follow-up only counts (RetryRecovered); a crash between the record and it loses
        # that count, never a message.
        now = int(self._clock())
        self._store.record_sent(chain, new_sid, retry_of, now)
        due = now + self._follow_up
        self._queue.send(FollowUp(new_sid, chain.root, chain.attempt, due), self._follow_up)

    def _give_up(self, chain: Chain, job: RetryJob, reason: str, now: float) -> Result:
        if not self._store.record_give_up(chain, job.event, reason, int(now)):
            return Result(Outcome.DUPLICATE, "decided already", chain=chain)
        return Result(Outcome.GAVE_UP, reason, chain=chain)

    # -- what every outcome leaves behind ------------------------------------------------------

    def _report(self, result: Result, log: dict[str, object]) -> Result:
        chain = {"root": result.chain.root, "attempt": result.chain.attempt} if result.chain else {}
        fields = {
            **log,
            **chain,
            "outcome": result.outcome.value,
            "detail": result.detail,
            "new_message_sid": result.new_message_sid,
        }
        if result.outcome is Outcome.GAVE_UP:
            logger.warning("retry given up", extra=fields)
            count_by("RetryGaveUpByReason", "reason", reason_value(result.detail))
        else:
            logger.info("retry decided", extra=fields)
        count(_METRICS[result.outcome])
        return result


_METRICS = {
    Outcome.SENT: "RetrySent",
    Outcome.WAITING: "RetryWaiting",
    Outcome.GAVE_UP: "RetryGaveUp",
    Outcome.SKIPPED: "RetrySkipped",
    Outcome.DUPLICATE: "RetryDuplicate",
}
