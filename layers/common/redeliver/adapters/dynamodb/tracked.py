"""DynamoDB adapter: tracked messages (TrackMessages), each sent message before any receipt.

One item in the message's partition, in the reconciliation index (`STUCK_INDEX`) with the
receipts stuck at `sent`, so the reconciler finds it with no index of its own:

| pk          | sk        | what                                                   | written by |
|-------------|-----------|--------------------------------------------------------|------------|
| the message | `TRACKED` | `conversation_sid`, `chat_service_sid`, `account_sid`, | ingest     |
|             |           | `date_created`, `expires_at` (TTL); in the index:      |            |
|             |           | `sent_since` (the message's DateCreated, then the last | ingest,    |
|             |           | lookup), `sent_shard`, `reconcile_lookups`             | reconcile  |

No `status` or `order_key`: nothing that reads receipts mistakes it for one. Ingest writes it
with ONE conditional UpdateItem and no read (`attribute_not_exists(pk)`): a duplicate webhook, or
a request botocore sent again after the first try applied, changes nothing, and one that comes
after the reconciler took the item out of the index does not put it back. The reconciler takes
it out of the index (REMOVE `sent_since`) once the message has a receipt; the item itself goes
with its TTL.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from redeliver.adapters.dynamodb.table import (
    LOOKUPS,
    RECEIPT_PREFIX,
    STUCK_SHARD,
    STUCK_SINCE,
    Key,
    TableAggregate,
    conditional_failure,
    message_pk,
    pending_shard,
    tracked_key,
)
from redeliver.domain.receipts import iso
from redeliver.domain.tracking import TrackedMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class TrackedMessages(TableAggregate):
    def track(self, message: TrackedMessage, now: float | None = None) -> bool:
        """Record a sent message, in the reconciliation index from its DateCreated. False: it
        was there already (a duplicate; nothing written)."""
        now = time.time() if now is None else now
        sets = [
            "conversation_sid = :conversation",
            "date_created = :created",
            f"{STUCK_SINCE} = :since",
            f"{STUCK_SHARD} = :shard",
            "expires_at = :expires_at",
        ]
        values: dict[str, AttributeValueTypeDef] = {
            ":conversation": {"S": message.conversation_sid},
            ":created": {"S": iso(message.date_created)},
            ":since": {"N": str(int(message.date_created.timestamp()))},
            ":shard": {"S": pending_shard(message.message_sid)},
            ":expires_at": {"N": str(int(now) + self._ttl_seconds)},
        }
        for attribute, value in (
            ("chat_service_sid", message.chat_service_sid),
            ("account_sid", message.account_sid),
        ):
            if value:
                sets.append(f"{attribute} = :{attribute}")
                values[f":{attribute}"] = {"S": value}
        return self._update(
            tracked_key(message.message_sid),
            "SET " + ", ".join(sets),
            "attribute_not_exists(pk)",
            values,
        )

    def has_receipt(self, message_sid: str) -> bool:
        """Whether the message's partition holds a receipt: one consistent Query, one item."""
        answer = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :rcpt)",
            ExpressionAttributeValues={
                ":pk": {"S": message_pk(message_sid)},
                ":rcpt": {"S": RECEIPT_PREFIX},
            },
            ProjectionExpression="pk",
            ConsistentRead=True,
            Limit=1,
        )
        return bool(answer.get("Items"))

    def begin_lookup(self, message_sid: str) -> None:
        """Note, before its receipts are asked of Twilio and recorded, that a lookup began
        (`reconcile_lookups` 1, in the index): a receipt found in its partition afterwards may be
        one this lookup recorded before it died, not a webhook's, and does not untrack it. The
        first empty answer writes the same 1 (`note_lookup`): counted once."""
        self._update(
            tracked_key(message_sid),
            f"SET {LOOKUPS} = :one",
            f"attribute_exists({STUCK_SINCE}) AND attribute_not_exists({LOOKUPS})",
            {":one": {"N": "1"}},
        )

    def received(self, message_sid: str) -> bool:
        """Take the tracked message out of the reconciliation index: it has a receipt, whose own
        entry (if it is at `sent`) is reconciled from now on. False: already out."""
        return self._update(
            tracked_key(message_sid),
            f"REMOVE {STUCK_SINCE}, {LOOKUPS}",
            f"attribute_exists({STUCK_SINCE})",
        )

    def _update(
        self,
        key: Key,
        expression: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef] | None = None,
    ) -> bool:
        """One UpdateItem under `condition` (no attribute names); False when it did not hold."""
        try:
            if values:
                self._db.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            else:  # DynamoDB refuses an empty ExpressionAttributeValues
                self._db.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                )
        except ClientError as error:
            if conditional_failure(error):
                return False
            raise
        return True
