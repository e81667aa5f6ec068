"""Record one delivery event and queue it if it is a new failure: the path every receipt takes.

`Recorder` is steps 2 and 3 of ingest (redeliver.usecases.ingest), the one copy of "record, then
queue a new failure": ingest, the spill consumer, the reconciler and the retry follow-up all record
through it. Its `Source` decides only the metrics: a receipt the reconciler had to ask for means a
webhook was lost (alarmed), one a retry's follow-up asked for does not (Twilio may send no webhook
for a REST-created message). It lives apart from ingest so that the functions that only record
(retry, reconcile, spill) import no signature checking (`make bench`: retry's cold start).

The write can meet the retry worker's claim, a transaction that checks this very receipt:
DynamoDB then rejects the write with TransactionConflictException, which botocore does not retry.
The write is idempotent and the transaction takes milliseconds, so it is tried again, a bounded
number of times: the event that meets a claim is a newer one of the claimed receipt, often the
`delivered` that must stop the resend.

A crash between the write and the enqueue must not lose the failure: the write also marks the
receipt `retry_pending_at` (the outbox pattern, in the same single write), and the sweeper queues
any mark left. So an SQS error on the enqueue is logged and counted, not raised; and where the
caller gives the time it has left (ingest, inside Twilio's 5 s), an enqueue try that might outlast
it is not started: the mark holds the failure, and the answer is not lost to a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.domain.jobs import RetryJob
from redeliver.domain.receipts import Change, Transition
from redeliver.observability import (
    count,
    count_by,
    count_each,
    error_class,
    logger,
    metrics,
    status_value,
)

if TYPE_CHECKING:
    from redeliver.domain.receipts import DeliveryEvent

WRITE_ATTEMPTS = 3  # for a write that meets a transaction; each wait is 50 ms more
_CONFLICT_PAUSE_SECONDS = 0.05
ANSWER_MARGIN_SECONDS = 0.3  # of the caller's time, kept for answering after the last request


@dataclass(frozen=True, slots=True)
class IngestResult:
    transition: Transition | None  # None: ignored (another event type), or spilled
    enqueued: bool = False
    spilled: bool = False  # the write failed; the event is on the spill queue


class Source(StrEnum):
    WEBHOOK = "webhook"  # a webhook Twilio sent (answered now, or replayed from the spill queue)
    RECONCILE = "reconcile"  # what Twilio's Receipts API reported when the reconciler asked
    # What it reported when a sent retry's follow-up asked: not a lost webhook (Twilio may send
    # none for a REST-created message), so counted apart from RECONCILE and not alarmed.
    FOLLOW_UP = "follow_up"


# Receipts Twilio told us only when asked, by who asked: (by status, failures among them).
_ASKED_METRICS = {
    Source.RECONCILE: ("ReconciledReceipts", "ReconciledFailures"),
    Source.FOLLOW_UP: ("FollowUpReceipts", "FollowUpFailures"),
}


class Recorder:
    """Store one event and queue it if it is a new failure: the path every receipt takes."""

    def __init__(
        self,
        receipts: Receipts,
        queue: RetryQueue,
        pause: Callable[[float], None] = time.sleep,
        *,
        enqueue_tries: int = 1,
        request_seconds: float = 0.0,
    ) -> None:
        """`enqueue_tries`: SendMessage calls for one enqueue (ingest's client makes one request
        per call; the others' clients retry inside botocore). `request_seconds`: the longest one
        request can take (its client's connect + read timeouts), for `time_left`."""
        self._receipts = receipts
        self._queue = queue
        self._pause = pause
        self._enqueue_tries = enqueue_tries
        self._request_seconds = request_seconds

    def record(
        self,
        event: DeliveryEvent,
        source: Source = Source.WEBHOOK,
        *,
        write_id: str | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> IngestResult:
        """Raises what the write raised (ClientError, BotoCoreError); an enqueue error does not.
        `write_id`: the same on each call that tries one write again. `time_left` (seconds): an
        enqueue try is started only while one request and the answer still fit."""
        log: dict[str, object] = {**log_fields(event), "source": source.value}
        transition = self._record(event, log, write_id)
        metrics.ride(receipt_line(event, transition, source))
        changed = transition.change in (Change.NEW, Change.LATEST)
        asked = _ASKED_METRICS.get(source)
        # `Receipts` alone: webhooks that reached us (NoReceiptsAlarm), so not what we asked for.
        # By change, from every source: `new` is the failure rate's denominator, one per message.
        # By status: what a receipt taught us, from every source (the dashboard's funnel).
        by = {"change": transition.change.value}
        if changed:
            by["status"] = status_value(event.status)
        count_each("Receipts", by, alone=asked is None)
        if asked is not None and changed:  # Twilio knew what no webhook told us (yet)
            count_by(asked[0], "status", status_value(event.status))
        if transition.change is Change.UNKNOWN:  # stored, never acted on: say so
            count("UnknownStatus")
            logger.warning(
                "a status Twilio's spec does not name: kept in the receipt's history only, "
                "neither a success nor a failure",
                extra=log,
            )
        if not transition.enqueue:
            return IngestResult(transition)

        count_each("NewFailures", {"error_class": error_class(event.error_code)})
        if source is Source.RECONCILE:  # ReconciledFailuresAlarm: webhook delivery is broken
            logger.warning("a failure found only by asking Twilio: webhooks are lost", extra=log)
        elif source is Source.FOLLOW_UP:  # the follow-up doing its job: queued all the same
            logger.info("a failed retry found by its follow-up", extra=log)
        if asked is not None:
            count(asked[1])
        for _ in range(self._enqueue_tries):
            if (
                time_left is not None
                and time_left() < self._request_seconds + ANSWER_MARGIN_SECONDS
            ):
                logger.warning("no time left to enqueue; the sweeper will queue it", extra=log)
                break
            try:
                self._queue.send(RetryJob(event))
            except (ClientError, BotoCoreError):
                logger.exception("retry enqueue failed", extra=log)
                continue
            return IngestResult(transition, enqueued=True)
        # Stored and marked pending: the sweeper queues it. Not a reason to fail the webhook.
        count("EnqueueDeferred")
        return IngestResult(transition, enqueued=False)

    def _record(
        self, event: DeliveryEvent, log: Mapping[str, object], write_id: str | None
    ) -> Transition:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return self._receipts.record(event, write_id=write_id)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if code != "TransactionConflictException" or attempt == WRITE_ATTEMPTS:
                    raise
                logger.info("receipt write met a transaction; trying again", extra=log)
                self._pause(_CONFLICT_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises


def receipt_line(event: DeliveryEvent, transition: Transition, source: Source) -> dict[str, object]:
    """The INFO line of a recorded receipt, the one line an ordinary receipt prints: it rides on
    the invocation's EMF document (redeliver.observability), so each byte is paid per receipt.

    What an operator needs to find the receipt and see what it did: the message SID (`redeliver
    trace IM…` shows the rest from the table: conversation, receipts, retries), its status and the
    change it made, which are also the document's `status` and `change` dimensions (one key, one
    value). A failure's line also names its conversation and receipt and gives the error code:
    it is the one an operator starts from. `source` only when it is not a webhook (reconcile,
    follow_up). Not the Lambda context: the log stream and the timestamp place the line, and
    warnings and errors still carry the context."""
    line: dict[str, object] = {"message_sid": event.message_sid}
    if event.is_failure or event.error_code is not None:
        line.update(log_fields(event))
    line["status"] = status_value(event.status)
    line["change"] = transition.change.value
    if source is not Source.WEBHOOK:
        line["source"] = source.value
    return line


def log_fields(event: DeliveryEvent) -> dict[str, object]:
    """What an operator needs of a receipt in a log line: SIDs, status, code; never a number."""
    return {
        "message_sid": event.message_sid,
        "receipt_sid": event.receipt_sid,
        "conversation_sid": event.conversation_sid,
        "status": event.status,
        "error_code": event.error_code,
    }
