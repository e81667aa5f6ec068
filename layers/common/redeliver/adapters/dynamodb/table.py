"""DynamoDB adapter: the one table every aggregate shares, its keys and its two sparse indexes.

One table, keyed by message: every item of a message lives in its partition
(`pk = "MSG#<IM sid>"`), so the retry worker reads all it needs in one consistent Query
(`attempts.Attempts.load_message`). Each aggregate has its own module and item shapes:

| module           | items or attributes                                   | written by       |
|------------------|-------------------------------------------------------|------------------|
| `receipts`       | `RCPT#<DY sid>`: a receipt, its latest status, history | ingest, recorder |
| `outbox`         | on a receipt: the pending mark (`PENDING_INDEX`)       | ingest, retry    |
| `reconciliation` | on a receipt: stuck at sent (`STUCK_INDEX`)            | ingest, reconcile |
| `tracked`        | `TRACKED`: a sent message, no receipt yet (`STUCK_INDEX`) | ingest, reconcile |
| `attempts`       | `ATTEMPT#<nnn>` under a root, `ORIGIN` under a new one | retry            |
| `suppressions`   | `SUPPRESS#<hash>`: partitions of their own             | retry, operators |

Both indexes are sharded the same way (`pending_shard`): a storm of failures or of sends spreads
over `SHARDS` index partitions instead of landing on one per epoch second, where a throttled index
partition would throttle the table's writes (and ingest would answer 500). template.yaml declares
the indexes; a template test checks that it and these names agree.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = Mapping[str, "AttributeValueTypeDef"]
Key = dict[str, "AttributeValueTypeDef"]

MESSAGE_PREFIX = "MSG#"
RECEIPT_PREFIX = "RCPT#"
ATTEMPT_PREFIX = "ATTEMPT#"
ORIGIN = "ORIGIN"
TRACKED = "TRACKED"  # a message's onMessageAdded, with TrackMessages (tracked.py)

# The outbox index: a failure the retry worker has not taken yet (outbox.py).
PENDING_INDEX = "RetryPendingByShard"
PENDING_SHARD = "pending_shard"  # partition key (S): pending_shard(message SID)
# sort key (N): epoch second the failure was marked, or re-queued by the sweeper (a later one when
# the sweeper re-queued it behind a backlog and looks again only then: redeliver.usecases.sweep)
PENDING_AT = "retry_pending_at"
# The reconciliation index: a receipt at `sent` (reconciliation.py).
STUCK_INDEX = "StuckSentByShard"
STUCK_SHARD = "sent_shard"  # partition key (S): pending_shard(message SID), the same spread
STUCK_SINCE = "sent_since"  # sort key (N): Twilio's DateUpdated of the `sent`, or the last lookup
LOOKUPS = "reconcile_lookups"  # (N) lookups that found nothing new
# Raise only: an entry in a shard the sweeper or reconciler no longer queries would never be found.
SHARDS = 16


def message_pk(message_sid: str) -> str:
    return f"{MESSAGE_PREFIX}{message_sid}"


def receipt_sk(receipt_sid: str) -> str:
    return f"{RECEIPT_PREFIX}{receipt_sid}"


def attempt_sk(number: int) -> str:
    return f"{ATTEMPT_PREFIX}{number:03d}"


def receipt_key(message_sid: str, receipt_sid: str) -> Key:
    return {"pk": {"S": message_pk(message_sid)}, "sk": {"S": receipt_sk(receipt_sid)}}


def tracked_key(message_sid: str) -> Key:
    return {"pk": {"S": message_pk(message_sid)}, "sk": {"S": TRACKED}}


def attempt_key(root: str, number: int) -> Key:
    return {"pk": {"S": message_pk(root)}, "sk": {"S": attempt_sk(number)}}


def pending_shard(message_sid: str) -> str:
    """The index partition of a message's entries: stable across processes (not `hash`)."""
    return str(zlib.crc32(message_sid.encode()) % SHARDS)


def int_of(value: AttributeValueTypeDef) -> int:
    """A number attribute's value."""
    return int(value["N"])


def text_of(item: Item, name: str) -> str:
    """A string attribute's value; "" when the item has none."""
    value = item.get(name)
    return value["S"] if value else ""


def conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class TableAggregate:
    """What every aggregate over the table holds: the client, the table's name, the items' TTL."""

    def __init__(self, client: DynamoDBClient, table_name: str, ttl_days: int = 30) -> None:
        self._db = client
        self._table = table_name
        self._ttl_seconds = ttl_days * 86_400

    def _conditional_update(
        self,
        key: Key,
        expression: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        names: dict[str, str] | None = None,
    ) -> bool:
        """One UpdateItem under `condition`; False when the condition did not hold."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names or {"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if conditional_failure(error):
                return False
            raise
        return True

    def _query_shards(
        self, index: str, shard_key: str, sort_key: str, older_than: int
    ) -> Iterator[Item]:
        """Every entry of a sharded sparse index whose sort key is at most `older_than`: one
        Query per shard, reading only those entries (no Scan, no filter)."""
        paginator = self._db.get_paginator("query")
        for shard in range(SHARDS):
            pages = paginator.paginate(
                TableName=self._table,
                IndexName=index,
                KeyConditionExpression="#shard = :shard AND #sort <= :cutoff",
                ExpressionAttributeNames={"#shard": shard_key, "#sort": sort_key},
                ExpressionAttributeValues={
                    ":shard": {"S": str(shard)},
                    ":cutoff": {"N": str(older_than)},
                },
            )
            for page in pages:
                yield from page.get("Items", [])
