"""Reconciliation: ask Twilio about receipts stuck at `sent`, and record what it says.

Twilio does not retry Conversations webhooks, and Event Streams does not carry
`onDeliveryUpdated`: a webhook that never reaches us (our 5xx, throttling, a network drop, a
redeploy) is a failure nobody retries. So every ReconcileEveryMinutes the reconciler reads the
receipts whose latest status has been `sent` for longer than ReconcileAfterMinutes (a sparse,
sharded index: redeliver/adapters/dynamodb/reconciliation.py), asks Twilio's Receipts API about
each of their messages (one call per message and run, plus paging), and records every receipt
Twilio reports through `Recorder` — the path a webhook takes, with the same ordering, dedupe,
outbox mark and enqueue. A failure found this way is retried exactly as a webhook's would be,
and counted `ReconciledFailures`: it means webhook delivery is broken.

Twilio's REST dates are whole seconds while a webhook's `DateUpdated` may carry milliseconds:
receipts are ordered to the whole second (redeliver/domain/receipts.py), so a `failed` Twilio
reports in the second of a stored `sent` is newer than it, and the same event from both paths is one
event.

The oldest stuck receipts are asked about first, whatever their shard: a run that the function's
timeout cuts short leaves the youngest for the next one, and a backlog cannot starve a shard.

A lookup that finds nothing new moves the entry one window on; after `max_lookups` such lookups
the receipt is left alone (it leaves the index) and counted `ReconcileLeftAlone`: a message Twilio
never reports further (a carrier that sends no delivery report) is not asked about forever.

A lookup Twilio refuses for our credentials (401, 403, 20003: a restricted or revoked API key)
says nothing about the message: it is counted `ReconcileRefused` (alarmed: a reconciler whose
every lookup is refused is dead, yet raises nothing) and, like a transient error, never towards
leaving the receipt alone, so what is stuck is found once the credentials are fixed.

With TrackMessages the same index also holds tracked messages (an `onMessageAdded` of an
outbound message: redeliver/adapters/dynamodb/tracked.py), so a message whose every delivery
webhook was lost is found too. For one past its age: if the message's partition holds a receipt
(one Query, one item; or a stuck receipt of it is in this very run), a webhook arrived and the
receipt's own entry carries on; the tracked message leaves the index (`TrackedReceived`).
Otherwise Twilio's Receipts API is asked, as for a stuck receipt, and what it reports is recorded
through `Recorder` first — a failure is queued like a webhook's — and only then does the tracked
message leave the index (`TrackedReconciled`). The lookup is noted on the tracked item before it
begins (`begin_lookup`): a crash between two of a group message's receipts leaves one recorded,
and the next run asks Twilio again rather than take that receipt for a webhook's. A receipt
webhook arriving meanwhile is the same event as the one recorded from the API (one conditional
write each; the latest truth wins). A message Twilio reports no receipt for yet (none was made,
or not yet) is looked up again a window later, and left alone after `max_lookups`, like a stuck
receipt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.reconciliation import StuckReceipt, StuckReceipts
from redeliver.adapters.dynamodb.tracked import TrackedMessages
from redeliver.adapters.twilio.conversations import ConversationsGateway, TwilioError
from redeliver.adapters.twilio.snapshots import ReceiptSnapshot
from redeliver.domain.receipts import (
    Change,
    DeliveryEvent,
    MalformedEvent,
    Transition,
    classify,
    iso,
)
from redeliver.observability import count, logger
from redeliver.usecases.recorder import Recorder, Source

MAX_LOOKUPS = 3  # lookups with nothing new before a stuck receipt is left alone


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message's receipts are asked for."""

    message_sid: str
    conversation_sid: str
    chat_service_sid: str = ""  # empty: the account's default Conversation Service


@dataclass(frozen=True, slots=True)
class Found:
    """One receipt Twilio reported, and what recording it did (or would do, on a dry run)."""

    event: DeliveryEvent
    transition: Transition

    @property
    def news(self) -> bool:
        return self.transition.change in (Change.NEW, Change.LATEST)


@dataclass
class Report:
    messages: int = 0  # asked Twilio about
    recorded: int = 0  # receipts that changed (new, or a newer status)
    failures: int = 0  # of them, failures queued for a retry
    unchanged: int = 0  # stuck receipts with nothing new
    left_alone: int = 0
    errors: int = 0  # lookups Twilio did not answer
    refused: int = 0  # of them, refused for our credentials (401, 403, 20003)
    skipped: list[str] = field(default_factory=list)  # messages not reached (time ran out)
    tracked_received: int = 0  # tracked messages a receipt webhook had reached
    tracked_reconciled: int = 0  # tracked messages with no receipt, found by asking Twilio


def event_from_snapshot(target: Target, snapshot: ReceiptSnapshot) -> DeliveryEvent:
    """A receipt of the Receipts API as the webhook would have carried it; MalformedEvent if it
    cannot be one (no date to order it by, a SID the spec does not allow)."""
    updated = snapshot.date_updated or snapshot.date_created
    if updated is None:
        raise MalformedEvent(f"receipt {snapshot.sid} has no date")
    return DeliveryEvent.from_dict(
        {
            "message_sid": target.message_sid,
            "receipt_sid": snapshot.sid,
            "conversation_sid": target.conversation_sid,
            "status": snapshot.status,
            "error_code": snapshot.error_code,
            "date_updated": iso(updated),
            "date_created": iso(snapshot.date_created or updated),
            "chat_service_sid": target.chat_service_sid,
            "participant_sid": snapshot.participant_sid or "",
            "channel_message_sid": snapshot.channel_message_sid or "",
        }
    )


def reported(twilio: ConversationsGateway, target: Target) -> list[DeliveryEvent]:
    """Every receipt Twilio reports for a message, as its webhook would have carried it; one that
    cannot be recorded is logged, counted and left out. Raises TwilioError."""
    events = []
    for snapshot in twilio.list_receipts(
        target.chat_service_sid, target.conversation_sid, target.message_sid
    ):
        try:
            events.append(event_from_snapshot(target, snapshot))
        except MalformedEvent as error:
            logger.warning(
                "a receipt Twilio reported cannot be recorded",
                extra={"message_sid": target.message_sid, "reason": str(error)},
            )
            count("ReconcileUnusableReceipts")
    return events


def record_reported(
    twilio: ConversationsGateway,
    recorder: Recorder,
    target: Target,
    source: Source = Source.RECONCILE,
) -> list[Found]:
    """Ask Twilio for a message's receipts and record each through the webhook's path: a new
    failure is queued for a retry. The reconciler and the retry worker's follow-up
    (`Source.FOLLOW_UP`: counted apart, not a lost webhook) both ask this way. Raises
    TwilioError, and what the write raises."""
    found = []
    for event in reported(twilio, target):
        result = recorder.record(event, source)
        if result.transition is not None:
            found.append(Found(event, result.transition))
    return found


class Reconciler:
    def __init__(
        self,
        stuck: StuckReceipts,
        receipts: Receipts,
        twilio: ConversationsGateway,
        recorder: Recorder,
        *,
        after_seconds: int,
        max_lookups: int = MAX_LOOKUPS,
        clock: Callable[[], float] = time.time,
        tracked: TrackedMessages | None = None,
    ) -> None:
        self._stuck = stuck
        self._tracked = tracked
        self._receipts = receipts
        self._twilio = twilio
        self._recorder = recorder
        self._after = after_seconds
        self._max_lookups = max_lookups
        self._clock = clock

    def stuck(self, older_than_seconds: int | None = None) -> dict[Target, list[StuckReceipt]]:
        """Stuck receipts grouped by message (one Twilio call covers all of a message's), the
        message stuck longest first, across shards."""
        age = self._after if older_than_seconds is None else older_than_seconds
        grouped: dict[Target, list[StuckReceipt]] = {}
        for stuck in self._stuck.stuck_sent(older_than=int(self._clock()) - age):
            target = Target(stuck.message_sid, stuck.conversation_sid, stuck.chat_service_sid)
            grouped.setdefault(target, []).append(stuck)
        return dict(sorted(grouped.items(), key=lambda entry: min(s.since for s in entry[1])))

    def lookup(self, target: Target, *, dry_run: bool = False) -> list[Found]:
        """Ask Twilio for a message's receipts and record each (dry run: classify only).
        Raises TwilioError."""
        if not dry_run:
            return record_reported(self._twilio, self._recorder, target)
        found = []
        for event in reported(self._twilio, target):
            state = self._receipts.get_receipt(event.message_sid, event.receipt_sid)
            found.append(Found(event, classify(state, event)))
        return found

    def run(self, time_left: Callable[[], float] | None = None, margin: float = 5.0) -> Report:
        """One scheduled pass. `time_left` (seconds) stops it `margin` seconds before the
        function's timeout (more than one lookup may take): what is not reached now is found
        again by the next run."""
        report = Report()
        now = int(self._clock())
        for target, stuck in self.stuck().items():
            if time_left is not None and time_left() < margin:
                report.skipped.append(target.message_sid)
                continue
            self._reconcile(target, stuck, now, report)
        for name, value in (
            ("ReconcileLookups", report.messages),
            ("ReconcileUnchanged", report.unchanged),
            ("ReconcileLeftAlone", report.left_alone),
            ("ReconcileErrors", report.errors),
            ("ReconcileRefused", report.refused),
            ("TrackedReceived", report.tracked_received),
            ("TrackedReconciled", report.tracked_reconciled),
        ):
            count(name, value)
        logger.info(
            "reconciled",
            extra={
                "messages": report.messages,
                "recorded": report.recorded,
                "failures": report.failures,
                "unchanged": report.unchanged,
                "left_alone": report.left_alone,
                "errors": report.errors,
                "refused": report.refused,
                "skipped": len(report.skipped),
                "tracked_received": report.tracked_received,
                "tracked_reconciled": report.tracked_reconciled,
            },
        )
        return report

    def _reconcile(
        self, target: Target, stuck: Iterable[StuckReceipt], now: int, report: Report
    ) -> None:
        stuck = list(stuck)
        tracked = [s for s in stuck if s.tracked]
        if tracked:
            stuck = [s for s in stuck if not s.tracked]
            # A receipt in the partition: a webhook reached us, unless a lookup of ours began
            # (and may have died between two of a group message's receipts): then ask again.
            looked = any(t.lookups for t in tracked)
            if stuck or (not looked and self._has_receipt(target.message_sid)):
                self._received(target.message_sid, report)
                if not stuck:
                    return
                tracked = []
            elif not looked and self._tracked is not None:
                self._tracked.begin_lookup(target.message_sid)
        report.messages += 1
        try:
            found = self.lookup(target)
        except TwilioError as error:
            # Gone (404) or refused for good: counted towards leaving it alone. Transient
            # (429, 5xx, no connection) or our credentials refused: not counted, but not asked
            # again before a window passes.
            logger.warning(
                "receipts lookup failed",
                extra={
                    "message_sid": target.message_sid,
                    "kind": error.kind,
                    "status": error.status,
                    "code": error.code,
                },
            )
            report.errors += 1
            if error.refused:
                report.refused += 1
            counted = error.kind in ("not_found", "permanent") and not error.refused
            for receipt in [*stuck, *tracked]:
                self._note(receipt, now, counted, report)
            return
        report.recorded += sum(1 for f in found if f.news)
        report.failures += sum(1 for f in found if f.transition.enqueue)
        moved_on = {f.event.receipt_sid for f in found if f.news}
        if tracked and (found or self._chat_only(target)):  # recorded first (begin_lookup)
            if self._tracked is not None and self._tracked.received(target.message_sid):
                report.tracked_reconciled += 1
                logger.info("tracked message reconciled", extra={"message_sid": target.message_sid})
            tracked = []
        for receipt in [*stuck, *tracked]:
            if receipt.receipt_sid not in moved_on:
                report.unchanged += 1
                self._note(receipt, now, True, report)

    def _chat_only(self, target: Target) -> bool:
        """A tracked message Twilio reports no receipt for, in a conversation with no SMS or
        WhatsApp participant (chat identities only: an SDK chat, a Flex agent's): Twilio makes
        receipts for none, so asking again would find nothing. One participants list; on an
        error, False (it is looked up again, as any)."""
        try:
            return self._twilio.recipients(target.chat_service_sid, target.conversation_sid) == 0
        except TwilioError:
            return False

    def _has_receipt(self, message_sid: str) -> bool:
        return self._tracked is not None and self._tracked.has_receipt(message_sid)

    def _received(self, message_sid: str, report: Report) -> None:
        if self._tracked is not None and self._tracked.received(message_sid):
            report.tracked_received += 1

    def _note(self, receipt: StuckReceipt, now: int, counted: bool, report: Report) -> None:
        left = self._stuck.note_lookup(receipt, now, counted=counted, max_lookups=self._max_lookups)
        if left:
            report.left_alone += 1
            logger.warning(
                "a receipt stuck at sent is left alone",
                extra={
                    "message_sid": receipt.message_sid,
                    "receipt_sid": receipt.receipt_sid,
                    "since": receipt.since,
                    "lookups": receipt.lookups + 1,
                },
            )
