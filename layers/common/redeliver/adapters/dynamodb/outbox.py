"""DynamoDB adapter: the outbox, failures the retry worker has not taken yet.

The outbox is not an item of its own but a mark on a receipt item (`receipts.py`):

| attribute          | what                                                  | written by      |
|--------------------|-------------------------------------------------------|-----------------|
| `retry_pending_at` | (N) epoch second the failure was marked (or re-queued) | ingest, sweeper |
| `pending_shard`    | (S) `pending_shard(message SID)`: the index partition  | ingest, sweeper |

Ingest sets the mark in the receipt's own conditional write, before it sends the retry job to
SQS; the retry worker clears it when it takes the failure. If the process dies between the write
and the send, the sweeper finds the mark (`pending_failures`) and queues the job again.

The index (`PENDING_INDEX`) is sparse: only a marked receipt is in it. It projects only what
`receipts.event_from_item` reads (`PENDING_PROJECTION`), so updating anything else on a receipt
(a history entry, the TTL) writes no index entry, and an entry stays far under one write unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redeliver.adapters.dynamodb.receipts import event_from_item
from redeliver.adapters.dynamodb.table import (
    PENDING_AT,
    PENDING_INDEX,
    PENDING_SHARD,
    TableAggregate,
    int_of,
    pending_shard,
    receipt_key,
    text_of,
)
from redeliver.domain.receipts import DeliveryEvent, MalformedEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# What event_from_item reads besides the table key (pk, sk): the index projects exactly these.
PENDING_PROJECTION = (
    "status",
    "error_code",
    "date_updated",
    "date_created",
    "conversation_sid",
    "account_sid",
    "chat_service_sid",
    "participant_sid",
    "channel_message_sid",
)


@dataclass(frozen=True, slots=True)
class PendingFailure:
    event: DeliveryEvent
    pending_since: int  # the mark as read: the sweeper re-queues only while it is still that


@dataclass(frozen=True, slots=True)
class UnreadableMark:
    """A marked item no retry job can be rebuilt from: reported by the sweeper, never fatal."""

    pk: str
    sk: str
    reason: str


class Outbox(TableAggregate):
    def pending_failures(self, older_than: int) -> Iterator[PendingFailure | UnreadableMark]:
        """Failures marked at or before `older_than` and not yet taken by the worker: one Query
        per shard of the sparse index, each reading only marks that old (no Scan, no filter).

        A marked item no job can be rebuilt from comes back as an `UnreadableMark`, in its place:
        raising would end the Query, and every mark after it would never be swept again."""
        for item in self._query_shards(PENDING_INDEX, PENDING_SHARD, PENDING_AT, older_than):
            try:
                event = event_from_item(item)
            except (MalformedEvent, KeyError, TypeError, ValueError) as error:
                yield UnreadableMark(text_of(item, "pk"), text_of(item, "sk"), repr(error))
                continue
            yield PendingFailure(event, int_of(item[PENDING_AT]))

    def clear_pending(self, event: DeliveryEvent) -> bool:
        """Mark `event`'s failure as taken; False if the receipt has moved on since."""
        return self._update_pending(event, f"REMOVE {PENDING_AT}", {})

    def touch_pending(self, pending: PendingFailure, now: int) -> bool:
        """Restart the grace period of a mark the sweeper is about to queue again (`now`: the
        mark's new time, which may be later than the clock's, to look again only then); False if
        the mark is no longer the one it read (taken by the worker, or set again by a newer one).

        The sweeper reads marks from an eventually consistent index, and the worker clears them
        concurrently: only the mark still there, as read, may be re-queued, and a taken one must
        not be set again (it would be swept again, and alarm as a lost enqueue)."""
        return self._update_pending(
            pending.event,
            f"SET {PENDING_AT} = :now, {PENDING_SHARD} = :shard",
            {
                ":now": {"N": str(now)},
                ":shard": {"S": pending_shard(pending.event.message_sid)},
                ":seen": {"N": str(pending.pending_since)},
            },
            f" AND {PENDING_AT} = :seen",
        )

    def _update_pending(
        self,
        event: DeliveryEvent,
        expression: str,
        values: dict[str, AttributeValueTypeDef],
        condition: str = "",
    ) -> bool:
        """Change the mark only while `event` is still its receipt's latest truth."""
        return self._conditional_update(
            receipt_key(event.message_sid, event.receipt_sid),
            expression,
            "order_key = :order_key AND #status = :status" + condition,
            {
                ":order_key": {"N": str(event.order_key)},
                ":status": {"S": event.status},
                **values,
            },
            names={"#status": "status"},
        )
