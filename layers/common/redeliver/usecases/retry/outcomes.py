"""What a retry record comes to, and how it goes back to the queue when it must come back.

A record ends in a `Result` (sent, waiting, gave up, skipped, a duplicate, followed up), counted
and logged once (`report`), or it raises: `RetryLater` when it must come back (a transient fault,
another worker's claim, a marker search that proved nothing), anything else when it failed.

A record that goes back to the queue (`RetryLater`) is first made visible again when its reason
has cleared, not after the queue's whole visibility timeout (`back_to_the_queue`): another
worker's young claim, when it turns stale; a 429, in a few seconds; an ambiguous create, when our
own claim turns stale; an AWS fault, soon. A record is only started when the invocation has time
left for its worst case (`record_budget_seconds`); the others go back at once, not started, as new
messages: a deferral is not a failed receive, and must not bring a healthy job nearer the DLQ.

`Timing` is the worker's clock and its jitters, one instance shared by the worker and its parts.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import TwilioError
from redeliver.domain.chain import Chain
from redeliver.domain.jobs import FollowUp, RetryJob
from redeliver.domain.policy import Jitter, stable_jitter
from redeliver.observability import count, count_by, logger, reason_value


class Outcome(StrEnum):
    SENT = "sent"
    WAITING = "waiting"
    GAVE_UP = "gave_up"
    SKIPPED = "skipped"  # the receipt moved on: delivered since, or a newer failure decides
    DUPLICATE = "duplicate"  # this attempt was decided by another record already
    FOLLOWED_UP = "followed_up"  # a sent retry's outcome was counted


# When a record sent back to the queue is seen again, by reason (seconds).
THROTTLED_SECONDS = (2.0, 8.0)  # a 429, or a Twilio call that did nothing: a few, spread out
AWS_FAULT_SECONDS = (1.0, 4.0)  # DynamoDB or SQS failed, or a transaction conflicted: soon
# The worst case of one record: every Twilio call it can make taking the whole HTTP timeout (and
# its DynamoDB and SQS calls): fetch, participants, the failed receipt's participant, create; an
# SMS fallback's lookup, conversation create, its fetch after a 50353, participant (50416),
# second lookup, and the participants of the conversation found (a group?). A stale claim's
# marker search (two pages) runs only where the claim names a conversation, which the SMS
# fallback's lookup then finds at once (no conversation built).
TWILIO_CALLS_PER_RECORD = 11
RECORD_MARGIN_SECONDS = 5


def record_budget_seconds(twilio_timeout_seconds: float) -> int:
    """The time left an invocation needs to start one more record."""
    return math.ceil(twilio_timeout_seconds * TWILIO_CALLS_PER_RECORD) + RECORD_MARGIN_SECONDS


class RetryLater(Exception):
    """The record must come back (SQS redelivery) in `seconds`: a transient fault, another
    worker's claim, a marker search that proved nothing."""

    def __init__(self, reason: str, seconds: int, chain: Chain | None = None) -> None:
        super().__init__(reason)
        self.seconds = max(0, seconds)
        self.chain = chain


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    new_message_sid: str = ""
    chain: Chain | None = None


@dataclass(slots=True)
class Timing:
    """The worker's clock, the jitter of its comebacks and the jitter of the policy's waits.
    One instance is shared by the worker and its parts, so each reads the same time."""

    clock: Callable[[], float] = time.time
    jitter: Callable[[float, float], float] = random.uniform
    policy_jitter: Jitter = stable_jitter

    def soon(self, spread: tuple[float, float]) -> int:
        """Seconds until a record sent back for a passing reason is seen again."""
        return round(self.jitter(*spread))


# -- what every outcome leaves behind ---------------------------------------------------------


def report(result: Result, log: dict[str, object]) -> Result:
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


def back_to_the_queue(
    queue: RetryQueue,
    timing: Timing,
    error: Exception,
    job: RetryJob | FollowUp | None,
    receipt_handle: str,
) -> None:
    """A record that raised: counted and logged, and made visible again when its reason has
    cleared (`error.seconds` for `RetryLater`), else after the queue's visibility timeout."""
    count("RetryError")
    fields: dict[str, object] = {**job_fields(job), "reason": str(error)}
    seconds: int | None = None  # the queue's visibility timeout: a malformed job, a bug
    if isinstance(error, RetryLater):
        seconds = error.seconds
        if error.chain is not None:
            fields.update(root=error.chain.root, attempt=error.chain.attempt)
    elif isinstance(error, TwilioError):  # a Twilio call outside the paths that decide
        seconds = timing.soon(THROTTLED_SECONDS)
    elif isinstance(error, ClientError | BotoCoreError):
        seconds = timing.soon(AWS_FAULT_SECONDS)
    fields["visible_in"] = seconds
    if isinstance(error, RetryLater):
        logger.warning("retry job back to the queue", extra=fields)
    else:
        logger.exception("retry job failed", extra=fields)
    if seconds is None or not receipt_handle:
        return
    try:
        queue.show_again_in(receipt_handle, seconds)
    except (ClientError, BotoCoreError):  # it comes back after the visibility timeout
        logger.exception("retry job visibility not changed", extra=fields)


def job_fields(job: RetryJob | FollowUp | None) -> dict[str, object]:
    """What names a job in the logs (SIDs, never content)."""
    if isinstance(job, RetryJob):
        return {"message_sid": job.event.message_sid, "receipt_sid": job.event.receipt_sid}
    if isinstance(job, FollowUp):
        return {"message_sid": job.message_sid, "root": job.root, "attempt": job.attempt}
    return {}


_METRICS = {
    Outcome.SENT: "RetrySent",
    Outcome.WAITING: "RetryWaiting",
    Outcome.GAVE_UP: "RetryGaveUp",
    Outcome.SKIPPED: "RetrySkipped",
    Outcome.DUPLICATE: "RetryDuplicate",
}
