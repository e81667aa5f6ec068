"""The follow-up: did a retry we sent reach its recipient?

The worker (worker.py) queues a follow-up for every attempt it records as sent, `follow_up_seconds`
later. The follow-up asks Twilio's Receipts API about the retry once that time has passed, and
records every receipt it reports through the webhook's path (`Recorder`): Twilio does not retry
webhooks, so a failed retry whose webhook never came is queued all the same and continues its
chain (its ORIGIN link is written before the follow-up is queued). The verdict, RetryRecovered /
RetryNotRecovered / RetryUnconfirmed, is Twilio's answer. It records as `Source.FOLLOW_UP`: a
failure found so is counted FollowUpFailures, not ReconciledFailures (that alarm means webhooks
are lost; a REST-created retry may get no webhook at all).

A follow-up may run more than once (SQS redelivers it, or a record that finds its attempt sent
queues it again): each records Twilio's truth (idempotent), and the verdict is counted once per
attempt (`followed_up_at`, one conditional UpdateItem per follow-up).

A retry Twilio still reports only as `sent` is looked at again, `follow_up_seconds` x 2, x 4, x 8
later (LOOKS in all), before it is judged RetryUnconfirmed: a phone that was off, a carrier's
queue. Only a final verdict takes the mark.

With outcome events on, a `RetryRecovered` verdict writes the `Retry Recovered` event item before
the mark, on its own (insert-only, so once per attempt whichever copy sees it): a copy that finds
the mark taken by another still publishes what Twilio told it, and a crash between the two leaves
the job to come back and mark. This is the one place a recovery is published: a delivered/read
webhook for a retry reaches ingest, whose hot path (one write, no read) does not know the message
is a retry; a retry delivered after the last look gets no event (counted RetryUnconfirmed).
"""

from __future__ import annotations

from dataclasses import replace

from redeliver.adapters.dynamodb.attempts import Attempts
from redeliver.adapters.dynamodb.outcome_events import OutcomeEventItems
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import ConversationsGateway, TwilioError
from redeliver.domain.jobs import FollowUp
from redeliver.domain.outcome_events import DetailType, build
from redeliver.domain.receipts import FAILURE_STATUSES, SUCCESS_STATUSES
from redeliver.observability import count, logger
from redeliver.usecases.reconcile import Target as Lookup
from redeliver.usecases.reconcile import record_reported
from redeliver.usecases.recorder import Recorder, Source
from redeliver.usecases.retry.outcomes import THROTTLED_SECONDS, Outcome, Result, RetryLater, Timing

LOOKS = 4  # at follow_up_seconds after the send, then 2x, 4x and 8x that after each look


class FollowUps:
    def __init__(
        self,
        attempts: Attempts,
        queue: RetryQueue,
        twilio: ConversationsGateway,
        recorder: Recorder,
        timing: Timing,
        *,
        follow_up_seconds: int = 900,
        events: OutcomeEventItems | None = None,
    ) -> None:
        self._attempts = attempts
        self._queue = queue
        self._twilio = twilio
        self._recorder = recorder
        self._timing = timing
        self._follow_up = follow_up_seconds
        self._events = events

    def follow_up(self, job: FollowUp) -> Result:
        """Did a retry we sent reach its recipient? Twilio's receipts say, once they had time;
        each is recorded as a webhook's would be, so a failed retry is queued for the next
        attempt. Twilio not answering now (429, 5xx): the job comes back in a few seconds."""
        now = self._timing.clock()
        log: dict[str, object] = {
            "message_sid": job.message_sid,
            "root": job.root,
            "attempt": job.attempt,
            "account_sid": job.account_sid,
            "look": job.look,
        }
        if job.due_at > now:
            self._queue.send(job, delay_seconds=int(job.due_at - now))
            return Result(Outcome.WAITING, "follow-up hop")
        askable = bool(job.conversation_sid)  # Twilio can be asked (again) about the retry
        if not askable:
            # Queued before follow-ups carried their conversation: Twilio cannot be asked, so
            # what the webhooks told us decides, as it did then.
            record = self._attempts.load_message(job.message_sid)
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
                askable = False
                log["twilio_error"] = error.kind
            statuses = {f.event.status for f in found}
            log["source"] = "twilio"
        if statuses & SUCCESS_STATUSES:
            verdict = "RetryRecovered"
        elif statuses & FAILURE_STATUSES:
            verdict = "RetryNotRecovered"  # its own failure job decides what comes next
        else:
            verdict = "RetryUnconfirmed"  # no receipt beyond `sent` (or none at all) yet
        if verdict == "RetryUnconfirmed" and askable and job.look < LOOKS:
            later = self._follow_up * 2**job.look
            again = replace(job, due_at=int(now) + later, look=job.look + 1)
            self._queue.send(again, delay_seconds=later)
            logger.info("retry followed up", extra={**log, "verdict": verdict, "again_in": later})
            return Result(Outcome.WAITING, "follow-up: looked at again later")
        if self._events is not None and verdict == "RetryRecovered":
            recovered = build(
                DetailType.RETRY_RECOVERED,
                root=job.root,
                attempt=job.attempt,
                message_sid=job.message_sid,
                new_message_sid=job.message_sid,
                account_sid=job.account_sid,
                chat_service_sid=job.chat_service_sid,
                conversation_sid=job.conversation_sid,
                error_code=job.error_code,
                action="follow_up",
                reason="delivered_or_read",
            )
            self._attempts.publish(self._events.put(recovered, int(now)))
        # Once per attempt: a follow-up may run twice (SQS, or queued again by Claims.resume).
        if self._attempts.mark_followed_up(job.root, job.attempt, int(now)):
            count(verdict)
        else:
            log["counted"] = False  # another copy of this follow-up judged it already
        logger.info("retry followed up", extra={**log, "verdict": verdict})
        return Result(Outcome.FOLLOWED_UP, verdict)
