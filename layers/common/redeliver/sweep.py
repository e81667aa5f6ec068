"""The outbox sweeper: queue failures that were stored but never reached the retry worker.

Ingest marks a failure `retry_pending_at` in the same write that stores it and the worker clears
the mark when it takes the job (see redeliver.ingest). A mark older than the grace period means
the SQS send was lost (a crash or an SQS error between the two): queue the job again. A duplicate
job is harmless, since the worker claims each attempt with a conditional write; a lost one is not.

The index the marks are read from is eventually consistent and the worker clears marks while the
sweeper runs, so a mark read may be gone already. Each one is first moved on, on the condition that
it is still the mark read (`touch_pending`), and queued only if that succeeded: a taken job is
neither queued again nor marked again, so `SweptFailures` counts only enqueues that were lost.
Touching before sending loses nothing: a send that fails leaves a mark the next run finds.

One item must not stop a run: a mark no job can be rebuilt from, or a send SQS refuses, is logged
and counted, and the sweep goes on with the next.
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from redeliver.jobs import RetryJob
from redeliver.observability import count, logger
from redeliver.retry_queue import RetryQueue
from redeliver.store import ReceiptStore, UnreadableMark


def sweep(
    store: ReceiptStore, queue: RetryQueue, grace_seconds: int, now: float | None = None
) -> int:
    now = time.time() if now is None else now
    swept = unreadable = deferred = 0
    for pending in store.pending_failures(older_than=int(now - grace_seconds)):
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
        if not store.touch_pending(pending, int(now)):  # taken, or superseded, since it was read
            continue
        try:
            queue.send(RetryJob(pending.event))
        except (ClientError, BotoCoreError):
            logger.exception("re-queue failed; the next sweep tries again", extra=log)
            deferred += 1
            continue
        logger.warning("re-queued a failure that never reached the worker", extra=log)
        swept += 1
    count("SweptFailures", swept)
    if unreadable:
        count("UnreadablePendingMarks", unreadable)
    if deferred:
        count("SweepEnqueueFailures", deferred)
    return swept
