"""The outbox sweeper: queue failures that were stored but never reached the retry worker.

Ingest marks a failure `retry_pending_at` in the same write that stores it and the worker clears
the mark when it takes the job (see redeliver.usecases.ingest). A mark older than the grace period
means the SQS send was lost (a crash or an SQS error between the two): queue the job again. A
duplicate job is harmless, since the worker claims each attempt with a conditional write; a lost one
is not.

The index the marks are read from is eventually consistent and the worker clears marks while the
sweeper runs, so a mark read may be gone already. Each one is first moved on, on the condition that
it is still the mark read (`touch_pending`), and queued only if that succeeded: a taken job is
neither queued again nor marked again, so `SweptFailures` counts only enqueues that were lost.
Touching before sending loses nothing: a send that fails leaves a mark the next run finds.

One item must not stop a run: a mark no job can be rebuilt from, or a send SQS refuses, is logged
and counted, and the sweep goes on with the next.

A mark past its grace is not always a lost enqueue: behind a backlog longer than the grace
(RetryMaxConcurrency reached, the retry function failing) ingest's job is only waiting, its mark
not taken yet. Queuing a copy on every run would add a copy of every waiting job each five
minutes, and count each as a lost enqueue. The mark alone cannot tell the two apart (ingest
records no more than its one write: DESIGN invariant 3), but the queue can: the sweeper reads
RetryQueue's depth (waiting + in flight) once per run that has old marks.

- Empty: no job is waiting, so no mark past its grace is one: each was lost. It is queued and
  counted `SweptFailures` (OutboxSweptAlarm), its grace restarted, as before.
- Not empty (or unknown): a mark may be a job waiting there. It is still queued once, since it may
  be lost and a busy queue may never be empty, but counted `SweptBehindBacklog` (not a loss) and,
  once its copy is sent, its mark moved `BACKLOG_RESWEEP_SECONDS` on, so the next look at it is an
  hour later, not the next run: at most one copy an hour per waiting job, instead of one a run.

Crashes: the grace is restarted before the send, as always; the hour is added only after the
send succeeded (a second conditional write, on the mark as this run set it). A sweeper dying
before the send, or a send SQS refuses, leaves the mark for the run after the grace; one dying
between the send and the second write leaves a copy queued and the mark for the next run, which
queues one more (one claim: DESIGN invariant 4). Never a mark moved on without its copy sent.
SQS's counts are approximate: a queue just emptied may still read busy (a copy, not counted as
lost), one just filled may read empty (a copy counted as lost, as before this check).
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from redeliver.adapters.dynamodb.outbox import Outbox, PendingFailure, UnreadableMark
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.domain.jobs import RetryJob
from redeliver.observability import count, logger

BACKLOG_RESWEEP_SECONDS = 3600  # a mark re-queued behind a backlog is looked at again after this


def sweep(outbox: Outbox, queue: RetryQueue, grace_seconds: int, now: float | None = None) -> int:
    """Queue the failures whose marks are past their grace; the number queued."""
    now = time.time() if now is None else now
    swept = behind = unreadable = deferred = 0
    backlog: bool | None = None  # read once, at the first old mark
    for pending in outbox.pending_failures(older_than=int(now - grace_seconds)):
        if isinstance(pending, UnreadableMark):
            logger.error(
                "an outbox mark no retry job can be built from",
                extra={"pk": pending.pk, "sk": pending.sk, "reason": pending.reason},
            )
            unreadable += 1
            continue
        log = {
            "message_sid": pending.event.message_sid,
            "receipt_sid": pending.event.receipt_sid,
            "pending_since": pending.pending_since,
        }
        if backlog is None:
            backlog = _backlog(queue)
        if not outbox.touch_pending(pending, int(now)):  # taken, or superseded, meanwhile
            continue
        try:
            queue.send(RetryJob(pending.event))
        except (ClientError, BotoCoreError):
            logger.exception("re-queue failed; a later sweep tries again", extra=log)
            deferred += 1
            continue
        if backlog:
            logger.info("re-queued a failure that may be waiting behind a backlog", extra=log)
            _look_again_later(outbox, pending, int(now), grace_seconds, log)
            behind += 1
        else:
            logger.warning("re-queued a failure that never reached the worker", extra=log)
            swept += 1
    count("SweptFailures", swept)
    if behind:
        count("SweptBehindBacklog", behind)
    if unreadable:
        count("UnreadablePendingMarks", unreadable)
    if deferred:
        count("SweepEnqueueFailures", deferred)
    return swept + behind


def _look_again_later(
    outbox: Outbox, pending: PendingFailure, now: int, grace: int, log: dict[str, object]
) -> None:
    """Move the mark this run set (`now`) on, so that it is looked at again only after
    BACKLOG_RESWEEP_SECONDS; if this fails, the next run looks at it (and queues one more copy)."""
    touched = PendingFailure(pending.event, now)
    try:
        outbox.touch_pending(touched, now + max(0, BACKLOG_RESWEEP_SECONDS - grace))
    except (ClientError, BotoCoreError):
        logger.exception("could not put off the next look at a re-queued mark", extra=log)


def _backlog(queue: RetryQueue) -> bool:
    """Whether RetryQueue holds jobs not yet done; unknown (the read failed) counts as yes: no
    loss is claimed that the queue might explain."""
    try:
        return queue.depth() > 0
    except (ClientError, BotoCoreError):
        logger.exception(
            "RetryQueue's depth is unknown; old marks are re-queued as behind a backlog"
        )
        return True
