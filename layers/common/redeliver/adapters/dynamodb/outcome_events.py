"""DynamoDB adapter: outcome events as a transactional outbox, published by the stack's pipe.

| pk                 | sk      | what                                               | by    |
|--------------------|---------|----------------------------------------------------|-------|
| `EVENT#<event_id>` | `EVENT` | `detail_type`, one S attribute per detail field    | retry |
|                    |         | (domain/outcome_events.py), `expires_at` (TTL)     |       |

An event's item is written in the same TransactWriteItems that records its decision (attempts.py:
`record_sent`, `record_give_up` and its suppression), so the event exists exactly when the
decision does (a recovery, which Twilio records, not we, is put alone by the follow-up that
sees it, before its mark: `Attempts.publish`): a worker that dies right after the record loses
nothing, since the table's stream carries the item to OutcomeEventsPipe (template.yaml), which
puts it on the bus. Insert-only (`attribute_not_exists(pk)`): a decision recorded again inserts
no second item, and the pipe's filter takes INSERT records only.

The item is written only when the stack has `EventBusName` set (OUTCOME_EVENTS in the retry
function's environment); otherwise `OutcomeEventItems` is not made and nothing changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redeliver.domain.outcome_events import OutcomeEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

PREFIX = "EVENT#"
SORT_KEY = "EVENT"


class OutcomeEventItems:
    """The transaction items of outcome events, for the writes that record their decisions."""

    def __init__(self, table_name: str, ttl_days: int = 30) -> None:
        self._table = table_name
        self._ttl_seconds = ttl_days * 86_400

    def put(self, event: OutcomeEvent, now: int) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": {"S": PREFIX + event.event_id},
                    "sk": {"S": SORT_KEY},
                    "detail_type": {"S": event.detail_type.value},
                    **{name: {"S": value} for name, value in event.detail.items()},
                    "expires_at": {"N": str(now + self._ttl_seconds)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }


def is_event_item(item_keys: tuple[str, str]) -> bool:
    """(pk, sk) of an outcome event's item."""
    pk, sk = item_keys
    return pk.startswith(PREFIX) and sk == SORT_KEY
