"""DynamoDB adapter: receipts stuck at `sent`, the reconciler's work list.

Like the outbox, an entry is a few attributes on a receipt item (`receipts.py`), in a sparse
index of its own (`STUCK_INDEX`):

| attribute           | what                                                   | written by |
|---------------------|--------------------------------------------------------|------------|
| `sent_since`        | (N) Twilio's DateUpdated of the `sent`, or last lookup | ingest,    |
|                     |                                                        | reconcile  |
| `sent_shard`        | (S) `pending_shard(message SID)`: the index partition  | ingest     |
| `reconcile_lookups` | (N) lookups that found nothing new                     | reconcile  |

Only a receipt whose latest status is `sent` carries `sent_since`, set by the receipt's own
single write and removed by the write that moves it on (delivered, read, a failure). The
reconciler (redeliver/usecases/reconcile.py) asks Twilio about entries older than
ReconcileAfterMinutes; after a lookup with nothing new it moves `sent_since` to the lookup's time
(one lookup per window) and counts it in `reconcile_lookups`, and after the last allowed lookup
removes `sent_since`: the receipt leaves the index, left alone. A `Receipts` built with
`track_sent=False` (ReconcileAfterMinutes=0) never sets it, so the index costs no write at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redeliver.adapters.dynamodb.table import (
    LOOKUPS,
    MESSAGE_PREFIX,
    RECEIPT_PREFIX,
    STUCK_INDEX,
    STUCK_SHARD,
    STUCK_SINCE,
    TRACKED,
    TableAggregate,
    int_of,
    receipt_key,
    text_of,
    tracked_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# What the reconciler reads besides the keys: where to ask Twilio, and what to condition on.
STUCK_PROJECTION = ("status", "order_key", "conversation_sid", "chat_service_sid", LOOKUPS)


@dataclass(frozen=True, slots=True)
class StuckReceipt:
    """A receipt at `sent` since `since` (epoch seconds), as the reconciliation index holds it."""

    message_sid: str
    receipt_sid: str
    conversation_sid: str
    chat_service_sid: str
    order_key: int
    lookups: int
    since: int
    # A tracked message (TrackMessages: redeliver/adapters/dynamodb/tracked.py), not a receipt:
    # `receipt_sid` is empty and `order_key` 0.
    tracked: bool = False


class StuckReceipts(TableAggregate):
    def stuck_sent(self, older_than: int) -> Iterator[StuckReceipt]:
        """Receipts at `sent` since `older_than` or before: one Query per shard of the sparse
        index, each reading only entries that old (no Scan, no filter)."""
        for item in self._query_shards(STUCK_INDEX, STUCK_SHARD, STUCK_SINCE, older_than):
            lookups = item.get(LOOKUPS)
            tracked = text_of(item, "sk") == TRACKED
            yield StuckReceipt(
                message_sid=text_of(item, "pk").removeprefix(MESSAGE_PREFIX),
                receipt_sid="" if tracked else text_of(item, "sk").removeprefix(RECEIPT_PREFIX),
                conversation_sid=text_of(item, "conversation_sid"),
                chat_service_sid=text_of(item, "chat_service_sid"),
                order_key=0 if tracked else int_of(item["order_key"]),
                lookups=int_of(lookups) if lookups else 0,
                since=int_of(item[STUCK_SINCE]),
                tracked=tracked,
            )

    def note_lookup(
        self, stuck: StuckReceipt, now: int, *, counted: bool, max_lookups: int
    ) -> bool | None:
        """After a lookup that found nothing new: not again before a window has passed, and after
        `max_lookups` counted ones never (the entry leaves the index). True: left alone now;
        False: kept; None: the receipt moved on meanwhile (nothing written)."""
        lookups = stuck.lookups + (1 if counted else 0)
        left_alone = lookups >= max_lookups
        expression = f"SET {LOOKUPS} = :lookups " + (
            f"REMOVE {STUCK_SINCE}" if left_alone else f", {STUCK_SINCE} = :now"
        )
        values: dict[str, AttributeValueTypeDef] = {
            ":lookups": {"N": str(lookups)},
            ":order_key": {"N": str(stuck.order_key)},
            ":sent": {"S": "sent"},
        }
        if not left_alone:
            values[":now"] = {"N": str(now)}
        if stuck.tracked:  # no status to condition on: only that it is still in the index
            del values[":order_key"], values[":sent"]
            moved_on = not self._conditional_update(
                tracked_key(stuck.message_sid),
                expression,
                "attribute_exists(#since)",
                values,
                names={"#since": STUCK_SINCE},
            )
            return None if moved_on else left_alone
        moved_on = not self._conditional_update(
            receipt_key(stuck.message_sid, stuck.receipt_sid),
            expression,
            f"#status = :sent AND order_key = :order_key AND attribute_exists({STUCK_SINCE})",
            values,
            names={"#status": "status"},
        )
        return None if moved_on else left_alone
