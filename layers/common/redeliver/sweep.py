"""The outbox sweeper: queue failures that were stored but never reached the retry worker.

Ingest marks a failure `retry_pending_at` in the same write that stores it and the worker clears
the mark when it takes the job (see redeliver.ingest). A mark older than the grace period means
the SQS send was lost (a crash or an SQS error between the two): queue the job again. A duplicate
job is harmless, since the worker claims each attempt with a conditional write; a lost one is not.
"""

from __future__ import annotations

import time

from redeliver.jobs import RetryJob
from redeliver.observability import count, logger
from redeliver.retry_queue import RetryQueue
from redeliver.store import ReceiptStore


def sweep(
    store: ReceiptStore, queue: RetryQueue, grace_seconds: int, now: float | None = None
) -> int:
    now = time.time() if now is None else now
    swept = 0
    for pending in store.pending_failures(older_than=int(now - grace_seconds)):
        queue.send(RetryJob(pending.event))
        store.touch_pending(pending.event, int(now))  # at most one re-queue per grace period
        logger.warning(
            "re-queued a failure that never reached the worker",
            extra={
                "message_sid": pending.event.message_sid,
                "receipt_sid": pending.event.receipt_sid,
                "pending_since": pending.pending_since,
            },
        )
        swept += 1
    count("SweptFailures", swept)
    return swept
