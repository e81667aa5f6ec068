"""DynamoDB adapter: receipts, the latest truth Twilio reported about each delivery.

Under the message partitions of the one table (`table.py`):

| pk          | sk              | what                                               | written by |
|-------------|-----------------|----------------------------------------------------|------------|
| the message | `RCPT#<DY sid>` | latest `status`, `order_key`, `error_code`, the    | ingest,    |
|             |                 | event's times and SIDs, one `hist_<status>` per    | recorders  |
|             |                 | distinct status, `write_id`, `expires_at` (TTL);   |            |
|             |                 | and the marks this same write sets or removes: the |            |
|             |                 | outbox's (`outbox.py`), stuck at sent              |            |
|             |                 | (`reconciliation.py`)                              |            |

Invariants 2 and 3 in one conditional write (`record`): the update only applies when the
event is newer than what is stored, `(order_key, status)` compared as `receipts.classify` does.
The old item comes back either way (ReturnValues / ReturnValuesOnConditionCheckFailure), so the
outcome is classified by `receipts.classify` without a read. Only a *distinct older* event costs
a second write, to add its history entry (the latest event of each status is kept).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from redeliver.adapters.dynamodb.table import (
    LOOKUPS,
    MESSAGE_PREFIX,
    PENDING_AT,
    PENDING_SHARD,
    RECEIPT_PREFIX,
    STUCK_SHARD,
    STUCK_SINCE,
    Item,
    Key,
    TableAggregate,
    conditional_failure,
    int_of,
    pending_shard,
    receipt_key,
    text_of,
)
from redeliver.domain.receipts import (
    NO_STATUS,
    Change,
    DeliveryEvent,
    HistoryEntry,
    ReceiptState,
    Transition,
    classify,
    iso,
    newer_in_history,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

HISTORY_PREFIX = "hist_"
# The id of the write that last set a receipt's latest event. botocore retries a request whose
# answer was lost (a read timeout, a reset, a 500) and DynamoDB may have applied the first try:
# the retry's condition then fails against the write itself, which must not read as a duplicate
# (the failure would not be queued until the sweeper's grace period had passed).
WRITE_ID = "write_id"
# order_key, not pk: an item may hold only statuses the spec does not name (no order_key yet).
_NEWER = (
    "attribute_not_exists(order_key) OR order_key < :order_key "
    "OR (order_key = :order_key AND #status < :status)"
)


def new_write_id() -> str:
    """The id of one receipt write, however many times it is sent (`WRITE_ID`)."""
    return uuid.uuid4().hex


class Receipts(TableAggregate):
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        ttl_days: int = 30,
        *,
        track_sent: bool = True,
    ) -> None:
        super().__init__(client, table_name, ttl_days)
        self._track_sent = track_sent  # False: ReconcileAfterMinutes=0, no reconciliation index

    def record(
        self, event: DeliveryEvent, now: float | None = None, write_id: str | None = None
    ) -> Transition:
        """Store `event` for its receipt; one conditional write unless the event is older.
        `write_id`: the same for every call that tries this one write again (ingest's own
        tries); by default this call's, which botocore's retries of the request share."""
        now = time.time() if now is None else now
        write_id = write_id or new_write_id()  # recognises its own write on a retried request
        if not event.is_known_status:
            return self._record_unknown(event, now, write_id)
        key = _receipt_key(event)
        names = {"#status": "status", "#hist": HISTORY_PREFIX + event.status}
        values: dict[str, AttributeValueTypeDef] = {
            ":status": {"S": event.status},
            ":order_key": {"N": str(event.order_key)},
            ":hist": _history_value(event.history_entry()),
            ":date_updated": {"S": iso(event.date_updated)},
            ":date_created": {"S": iso(event.date_created)},
            ":conversation": {"S": event.conversation_sid},
            ":expires_at": {"N": str(int(now) + self._ttl_seconds)},
            ":write_id": {"S": write_id},
        }
        sets = [
            "#status = :status",
            "order_key = :order_key",
            "#hist = :hist",
            "date_updated = :date_updated",
            "date_created = if_not_exists(date_created, :date_created)",
            "conversation_sid = :conversation",
            "expires_at = :expires_at",
            f"{WRITE_ID} = :write_id",
        ]
        removes: list[str] = []
        for attribute, value in (
            ("account_sid", event.account_sid),
            ("chat_service_sid", event.chat_service_sid),
            ("participant_sid", event.participant_sid),
            ("channel_message_sid", event.channel_message_sid),
        ):
            if value:
                sets.append(f"{attribute} = :{attribute}")
                values[f":{attribute}"] = {"S": value}
        if event.error_code is None:
            removes.append("error_code")
        else:
            sets.append("error_code = :error_code")
            values[":error_code"] = {"N": str(event.error_code)}
        self._index_marks(event, now, sets, removes, values)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=_NEWER,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return classify(state_from_item(answer.get("Attributes")), event)
        except ClientError as error:
            if not conditional_failure(error):
                raise
            old = cast("Item | None", error.response.get("Item"))
            if old is None:  # DynamoDB always returns it when asked; never guess "new"
                raise
        if text_of(old, WRITE_ID) == write_id:
            # This very write, applied on a try whose answer was lost (botocore sent it again):
            # the event is the receipt's latest now, whatever it replaced.
            return Transition(Change.LATEST, None, enqueue=event.is_failure)
        state = state_from_item(old)
        transition = classify(state, event)
        if transition.change is Change.OLDER and state and newer_in_history(state, event):
            self._add_history(key, event)
        return transition

    def _index_marks(
        self,
        event: DeliveryEvent,
        now: float,
        sets: list[str],
        removes: list[str],
        values: dict[str, AttributeValueTypeDef],
    ) -> None:
        """The sparse-index attributes `record`'s one write sets or removes."""
        # The outbox mark: a failure is pending until the retry worker has taken it. If the
        # process dies between this write and the SQS send, the sweeper finds the mark.
        # The shard stays when the mark goes: the item leaves the sparse index with its sort key.
        if event.is_failure:
            sets.append(f"{PENDING_AT} = :now, {PENDING_SHARD} = :shard")
            values[":now"] = {"N": str(int(now))}
            values[":shard"] = {"S": pending_shard(event.message_sid)}
        else:
            removes.append(PENDING_AT)
        # The reconciliation index, in the same write: a `sent` enters it (a newer one starts its
        # count again), anything else leaves it. Removing what is absent writes no index entry.
        if event.status == "sent" and self._track_sent:
            sets.append(f"{STUCK_SINCE} = :sent_since, {STUCK_SHARD} = :shard")
            values[":sent_since"] = {"N": str(int(event.date_updated.timestamp()))}
            values[":shard"] = {"S": pending_shard(event.message_sid)}
        else:
            removes.append(STUCK_SINCE)
        removes.append(LOOKUPS)

    def _record_unknown(self, event: DeliveryEvent, now: float, write_id: str) -> Transition:
        """A status Twilio's spec does not name: its history entry only, in one conditional
        write (the item is made if it is the receipt's first event). The receipt's status, its
        outbox mark and its stuck-at-sent entry stay as they are: such a status is neither a
        success nor a failure (`receipts.Change.UNKNOWN`). Where the message lives (its
        conversation, service, account) is kept when the item has none yet: a receipt whose only
        event is such a status can still be looked up (`redeliver reconcile`, `send-receipt`).

        The entry carries this write's id (`WRITE_ID`, as `record`'s item does): a request
        botocore sent again after DynamoDB applied it fails its condition against the entry it
        wrote, and is still this event's one arrival (UNKNOWN, counted), not a duplicate."""
        name = HISTORY_PREFIX + event.status
        entry: AttributeValueTypeDef = {
            "M": {**_history_value(event.history_entry())["M"], WRITE_ID: {"S": write_id}}
        }
        sets = ["#hist = :hist", "expires_at = if_not_exists(expires_at, :exp)"]
        values: dict[str, AttributeValueTypeDef] = {
            ":hist": entry,
            ":at": {"S": iso(event.date_updated)},
            ":exp": {"N": str(int(now) + self._ttl_seconds)},
        }
        for attribute, value in (
            ("conversation_sid", event.conversation_sid),
            ("account_sid", event.account_sid),
            ("chat_service_sid", event.chat_service_sid),
        ):
            if value:
                sets.append(f"{attribute} = if_not_exists({attribute}, :{attribute})")
                values[f":{attribute}"] = {"S": value}
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=_receipt_key(event),
                UpdateExpression="SET " + ", ".join(sets),
                # Same rule as receipts.newer_in_history; ISO times in one format sort as text.
                ConditionExpression="attribute_not_exists(#hist) OR #hist.#at < :at",
                ExpressionAttributeNames={"#hist": name, "#at": "at"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            old: Item | None = answer.get("Attributes")
        except ClientError as error:
            if not conditional_failure(error):
                raise
            old = cast("Item | None", error.response.get("Item"))
            mine = cast("dict[str, Any]", (old or {}).get(name, {})).get("M", {})
            if text_of(mine, WRITE_ID) == write_id:  # this very write, applied on a lost try
                before = {k: v for k, v in (old or {}).items() if k != name}
                state = state_from_item(before)
                return Transition(Change.UNKNOWN, state.status if state else None, enqueue=False)
        return classify(state_from_item(old), event)

    def _add_history(self, key: Item, event: DeliveryEvent) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #hist = :hist",
                # Same rule as receipts.newer_in_history; ISO times in one format sort as text.
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(#hist) OR #hist.#at < :at)",
                ExpressionAttributeNames={"#hist": HISTORY_PREFIX + event.status, "#at": "at"},
                ExpressionAttributeValues={
                    ":hist": _history_value(event.history_entry()),
                    ":at": {"S": iso(event.date_updated)},
                },
            )
        except ClientError as error:
            if not conditional_failure(error):  # a newer one is there: a concurrent copy won
                raise

    def get_receipt(self, message_sid: str, receipt_sid: str) -> ReceiptState | None:
        answer = self._db.get_item(
            TableName=self._table,
            Key=receipt_key(message_sid, receipt_sid),
            ConsistentRead=True,
        )
        return state_from_item(answer.get("Item"))


# -- item <-> domain ----------------------------------------------------------------------------


def _receipt_key(event: DeliveryEvent) -> Key:
    return receipt_key(event.message_sid, event.receipt_sid)


def _history_value(entry: HistoryEntry) -> AttributeValueTypeDef:
    value: dict[str, AttributeValueTypeDef] = {"at": {"S": entry.at}}
    if entry.error_code is not None:
        value["code"] = {"N": str(entry.error_code)}
    return {"M": value}


def state_from_item(item: Item | None) -> ReceiptState | None:
    """The stored receipt; None if there is none. An item with only statuses the spec does not
    name has status `NO_STATUS`."""
    if not item:
        return None
    history = {}
    for name, value in item.items():
        if name.startswith(HISTORY_PREFIX):
            entry: Any = value["M"]
            code = entry.get("code")
            history[name.removeprefix(HISTORY_PREFIX)] = HistoryEntry(
                at=entry["at"]["S"], error_code=int(code["N"]) if code else None
            )
    if "status" not in item:
        return ReceiptState(NO_STATUS, 0, None, history) if history else None
    code = item.get("error_code")
    return ReceiptState(
        status=text_of(item, "status"),
        order_key=int_of(item["order_key"]),
        error_code=int_of(code) if code else None,
        history=history,
    )


def event_from_item(item: Item) -> DeliveryEvent:
    """The latest event of a stored receipt, as the webhook carried it."""
    code = item.get("error_code")
    return DeliveryEvent.from_dict(
        {
            "message_sid": text_of(item, "pk").removeprefix(MESSAGE_PREFIX),
            "receipt_sid": text_of(item, "sk").removeprefix(RECEIPT_PREFIX),
            "conversation_sid": text_of(item, "conversation_sid"),
            "status": text_of(item, "status"),
            "error_code": int_of(code) if code else None,
            "date_updated": text_of(item, "date_updated"),
            "date_created": text_of(item, "date_created"),
            "account_sid": text_of(item, "account_sid"),
            "chat_service_sid": text_of(item, "chat_service_sid"),
            "participant_sid": text_of(item, "participant_sid"),
            "channel_message_sid": text_of(item, "channel_message_sid"),
        }
    )
