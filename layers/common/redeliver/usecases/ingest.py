"""The ingest use case: a signed `onDeliveryUpdated` webhook in, a receipt stored, failures queued.

Order matters and is the point of this module:

1. signature, before anything is parsed or written (DESIGN invariant 1);
2. one conditional write that keeps the latest truth and ignores duplicates (invariants 2, 3);
3. for a receipt that has just become a failure, one SQS message for the retry worker.

A crash between 2 and 3 must not lose the failure, and Twilio will not resend the webhook. So the
write in 2 also marks the receipt `retry_pending_at` (the outbox pattern, in the same single
write); the retry worker clears the mark when it takes the job, and the sweeper re-enqueues any
mark older than a few minutes. An SQS error in 3 is therefore logged and answered 200: the receipt
is stored and the sweeper will queue it. Only a failed write in 2 is a fault (5xx, alarmed).

When the write in 2 fails (throttling, an outage; one that meets a retry worker's claim is tried
again first: redeliver.usecases.recorder), the verified event goes to the spill queue and Twilio
gets its 200: a consumer (functions/spill) replays it through the same `Recorder`. Only when
DynamoDB and SQS both fail is the answer a 5xx (alarmed): Twilio does not resend, so that receipt is
lost unless the reconciler (redeliver/usecases/reconcile.py) finds it later.

All of it inside the function's 4 s: a request that hangs costs its client's whole connect + read
timeout (`request_seconds`), and botocore's own retries (with their pauses) do not know the
invocation's deadline, so a hanging DynamoDB and then a hanging SQS outlasted it (Lambda stops the
function, the API answers 5xx, and a spill SQS would have taken is never sent). So ingest's clients
make one request per call (redeliver.adapters.aws.WEBHOOK) and the tries are counted here, against
the time the invocation has left (`time_left`, from the Lambda context): the write is tried again
only with time for that try *and* a spill try after it; a spill or enqueue try is started only while
it fits. A write tried again carries the same write id, so a first try applied but unanswered is
recognised as this write, not read as a duplicate (redeliver.adapters.dynamodb.receipts).

Steps 2 and 3 are `redeliver.usecases.recorder.Recorder`, the one copy of "record, then queue a new
failure" that the spill consumer, the reconciler and the retry follow-up record through too.

With TrackMessages (`tracked` given), an `onMessageAdded` of a message sent by the API or an SDK
is recorded as "sent, no receipt yet" (redeliver.domain.tracking, adapters/dynamodb/tracked.py):
after the same signature check, one conditional write, no read, no queue. A duplicate changes
nothing. An inbound message (a participant's SMS or WhatsApp), or any onMessageAdded without
TrackMessages, is answered 200 and nothing is stored (`UntrackedMessages`). A failed write is a
5xx like a receipt's (not spilled: the reconciler still finds the message through any receipt
webhook that does arrive).

Nothing Twilio signs can hold a lone surrogate (the signature is over UTF-8 bytes), so a body
that cannot be encoded is refused as unverifiable (403) before it reaches the HMAC, which raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from redeliver.adapters.aws import WEBHOOK_REQUEST_SECONDS
from redeliver.adapters.dynamodb.receipts import Receipts, new_write_id
from redeliver.adapters.dynamodb.tracked import TrackedMessages
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.sqs.spill import SpillQueue
from redeliver.adapters.twilio.signature import FormFields, SignatureVerifier
from redeliver.domain.receipts import (
    DELIVERY_EVENT_TYPE,
    DeliveryEvent,
    MalformedEvent,
    parse_receipt,
)
from redeliver.domain.tracking import MESSAGE_ADDED_EVENT_TYPE, is_outbound, parse_message_added
from redeliver.observability import count, count_by, logger, metrics
from redeliver.usecases.recorder import ANSWER_MARGIN_SECONDS, IngestResult, Recorder, log_fields

MAX_BODY_BYTES = 16 * 1024  # a delivery receipt is well under 1 KiB
# onMessageAdded carries the message: a 1,600-character Body and 4 KB of Attributes (Twilio's
# Conversations limits), form-encoded up to 9 bytes a character (%E2%82%AC): over 16 KiB.
MAX_MESSAGE_ADDED_BYTES = 64 * 1024
TRIES = 2  # of the write, of the spill send and of the enqueue, each one request
RETRY_PAUSE_SECONDS = 0.1  # before the write is tried again
REQUEST_SECONDS = WEBHOOK_REQUEST_SECONDS  # a try of ingest's clients, at worst


class SignatureRejected(Exception):
    """The request is not provably from Twilio (answered with 403, nothing stored)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook signature rejected: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str  # the URL Twilio signed
    body: str  # the decoded form body
    signature: str | None
    signature_settings: str | None = None


class Ingest:
    def __init__(
        self,
        verifier: SignatureVerifier,
        receipts: Receipts,
        queue: RetryQueue,
        pause: Callable[[float], None] = time.sleep,
        spill: SpillQueue | None = None,
        *,
        request_seconds: float = REQUEST_SECONDS,
        tracked: TrackedMessages | None = None,
    ) -> None:
        self._verifier = verifier
        self._tracked = tracked  # None: TrackMessages off
        self._queue = queue
        self._spill = spill
        self._pause = pause
        self._request_seconds = request_seconds
        self.recorder = Recorder(
            receipts, queue, pause, enqueue_tries=TRIES, request_seconds=request_seconds
        )

    def receive(
        self, request: WebhookRequest, time_left: Callable[[], float] | None = None
    ) -> IngestResult:
        """`time_left`: seconds the invocation has left (none given: no deadline)."""
        try:
            size = len(request.body.encode())
        except UnicodeEncodeError:  # a lone surrogate: not text Twilio could have signed
            raise SignatureRejected("undecodable") from None
        try:
            fields = FormFields.parse(request.body)
        except ValueError:  # more fields than any Twilio webhook has: cannot be verified
            raise SignatureRejected("unparseable") from None
        verdict = self._verifier.verify(
            request.url, fields, request.signature, request.signature_settings
        )
        if not verdict.valid:
            raise SignatureRejected(verdict.reason)

        form = fields.first()
        event_type = form.get("EventType", "")
        limit = (
            MAX_MESSAGE_ADDED_BYTES if event_type == MESSAGE_ADDED_EVENT_TYPE else MAX_BODY_BYTES
        )
        if size > limit:
            raise MalformedEvent(f"body is over {limit} bytes")
        if event_type == MESSAGE_ADDED_EVENT_TYPE:
            return self._message_added(form)
        if event_type and event_type != DELIVERY_EVENT_TYPE:
            logger.info("ignoring a signed event of another type", extra={"event_type": event_type})
            count("IgnoredEvents")
            return IngestResult(transition=None)
        parsed = parse_receipt(form)
        event = parsed.event
        log = log_fields(event)
        if parsed.dropped:  # optional fields that did not parse: stored without, never a 400
            logger.warning(
                "optional field(s) dropped", extra={**log, "dropped": list(parsed.dropped)}
            )
            for name in parsed.dropped:
                count_by("DroppedReceiptFields", "field", name)

        left = time_left or _no_deadline
        write_id = new_write_id()  # one write, however many tries
        # Tried again only with time for that try and a spill try after it.
        reserve = RETRY_PAUSE_SECONDS + self._request_seconds * (2 if self._spill else 1)
        for attempt in range(1, TRIES + 1):
            try:
                return self.recorder.record(event, write_id=write_id, time_left=left)
            except (ClientError, BotoCoreError) as failed:
                error = failed
            if (
                attempt == TRIES
                or not _worth_another_try(error)
                or left() < reserve + ANSWER_MARGIN_SECONDS
            ):
                break
            logger.info("receipt write failed; trying again", extra={**log, "attempt": attempt})
            self._pause(RETRY_PAUSE_SECONDS)
        if self._spill is None:
            raise error
        return self._spill_or_raise(self._spill, event, error, left, log)

    def _message_added(self, form: dict[str, str]) -> IngestResult:
        """TrackMessages: one conditional write for an outbound message; else nothing stored."""
        if self._tracked is None or not is_outbound(form.get("Source", "")):
            count("UntrackedMessages")  # off, or inbound: not even parsed
            return IngestResult(transition=None)
        message = parse_message_added(form)
        new = self._tracked.track(message)
        if new:
            count("TrackedMessages")
        # One line, riding on the metrics document as a receipt's does (recorder.receipt_line):
        # the SID, never the body or the author.
        metrics.ride({"message_sid": message.message_sid, "tracked": "new" if new else "duplicate"})
        return IngestResult(transition=None)

    def _spill_or_raise(
        self,
        spill: SpillQueue,
        event: DeliveryEvent,
        error: ClientError | BotoCoreError,
        left: Callable[[], float],
        log: dict[str, object],
    ) -> IngestResult:
        """Spill the event the write failed for, with the tries that fit; else raise `error`."""
        for _ in range(TRIES):
            if left() < self._request_seconds + ANSWER_MARGIN_SECONDS:
                logger.error("no time left to spill", extra={**log, "seconds_left": left()})
                break
            try:
                spill.send(event)
            except (ClientError, BotoCoreError):
                logger.exception("spill failed", extra=log)
                continue
            logger.error("receipt write failed; spilled for replay", extra=log, exc_info=error)
            count("SpilledReceipts")
            return IngestResult(transition=None, spilled=True)
        logger.error("write and spill failed: the receipt is not stored", extra=log, exc_info=error)
        raise error


# What botocore's standard mode would have tried again (a conflict with a transaction has been,
# by the Recorder): throttling, a 5xx, and no connection or answer at all.
_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "Throttling",
    }
)


def _worth_another_try(error: ClientError | BotoCoreError) -> bool:
    if isinstance(error, BotoCoreError):
        return True
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return error.response.get("Error", {}).get("Code") in _THROTTLING or status >= 500


def _no_deadline() -> float:
    return float("inf")
