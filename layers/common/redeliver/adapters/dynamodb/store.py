"""DynamoDB adapter: the receipts table.

One table, keyed by message. Item shapes (all under `pk = "MSG#<IM sid>"`):

| sk                | what                                                       | written by |
|-------------------|------------------------------------------------------------|------------|
| `RCPT#<DY sid>`   | a receipt: latest status, order key, one `hist_<status>`   | ingest     |
|                   | attribute per distinct status, `retry_pending_at` and       |            |
|                   | `pending_shard` (the outbox mark, see `PENDING_INDEX`)      |            |
| `ATTEMPT#<nnn>`   | under a root message: attempt n's claim and outcome, and    | retry      |
|                   | the new message it created (the forward link); a claim also |            |
|                   | records its intent (`INTENT_ATTRIBUTES`: the way, service,  |            |
|                   | conversation or unique name, sender, recipient hash)        |            |
| `ORIGIN`          | under a new message: its root, the message it retried, the  | retry      |
|                   | attempt number (the backward link)                          |            |

Invariants 2 and 3 in one conditional write (`record`): the update only applies when the
event is newer than what is stored, `(order_key, status)` compared as `receipts.classify` does.
The old item comes back either way (ReturnValues / ReturnValuesOnConditionCheckFailure), so the
outcome is classified by `receipts.classify` without a read. Only a *distinct older* event costs
a second write, to add its history entry (the latest event of each status is kept).

The outbox index (`PENDING_INDEX`) is sparse: only a failure the retry worker has not taken yet
carries `retry_pending_at`. Its partition key is `pending_shard`, one of `PENDING_SHARDS` values
derived from the message SID and set in that same single write, so a failure storm spreads over
that many index partitions instead of landing on one per epoch second (a throttled index
partition throttles the table's writes, and ingest would answer 500). The index projects only
what `event_from_item` reads (`PENDING_PROJECTION`): updating anything else (a history entry,
the TTL) writes no index entry, and an entry stays far under one write unit.

The reconciliation index (`STUCK_INDEX`, issue 9) is sparse the same way: only a receipt whose
latest status is `sent` carries `sent_since` (its Twilio DateUpdated, in epoch seconds), set by
that same single write and removed by the write that moves the receipt on (delivered, read, a
failure). The reconciler (redeliver/usecases/reconcile.py) asks Twilio about entries older than
ReconcileAfterMinutes; after a lookup with nothing new it moves `sent_since` to the lookup's time
(one lookup per window) and counts it in `reconcile_lookups`, and after the last allowed lookup
removes `sent_since`: the receipt leaves the index, left alone. A store built with
`track_sent=False` (ReconcileAfterMinutes=0) never sets it, so the index costs no write at all.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from redeliver.domain.chain import Attempt, AttemptState, Chain, Intent, Origin
from redeliver.domain.receipts import (
    Change,
    DeliveryEvent,
    HistoryEntry,
    MalformedEvent,
    ReceiptState,
    Transition,
    classify,
    iso,
    newer_in_history,
    parse_time,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutItemInputTypeDef,
        TransactWriteItemTypeDef,
    )

Item = Mapping[str, "AttributeValueTypeDef"]

HISTORY_PREFIX = "hist_"
# The outbox index; template.yaml declares it and a template test checks the two agree.
PENDING_INDEX = "RetryPendingByShard"
PENDING_SHARD = "pending_shard"  # partition key (S): pending_shard(message SID)
# sort key (N): epoch second the failure was marked, or re-queued by the sweeper (a later one when
# the sweeper re-queued it behind a backlog and looks again only then: redeliver.usecases.sweep)
PENDING_AT = "retry_pending_at"
# Raise only: a mark in a shard the sweeper no longer queries would never be found.
PENDING_SHARDS = 16
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
# The id of the write that last set a receipt's latest event. botocore retries a request whose
# answer was lost (a read timeout, a reset, a 500) and DynamoDB may have applied the first try:
# the retry's condition then fails against the write itself, which must not read as a duplicate
# (the failure would not be queued until the sweeper's grace period had passed).
WRITE_ID = "write_id"
# The reconciliation index; template.yaml declares it and a template test checks the two agree.
STUCK_INDEX = "StuckSentByShard"
STUCK_SHARD = "sent_shard"  # partition key (S): pending_shard(message SID), the same spread
STUCK_SINCE = "sent_since"  # sort key (N): Twilio's DateUpdated of the `sent`, or the last lookup
LOOKUPS = "reconcile_lookups"  # (N) lookups that found nothing new
# What the reconciler reads besides the keys: where to ask Twilio, and what to condition on.
STUCK_PROJECTION = ("status", "order_key", "conversation_sid", "chat_service_sid", LOOKUPS)
_NEWER = (
    "attribute_not_exists(pk) OR order_key < :order_key "
    "OR (order_key = :order_key AND #status < :status)"
)


# A claim's intent (chain.Intent), one attribute each: what its claimant is about to create and
# where. Never a phone number: an SMS fallback's recipient is kept as a hash.
INTENT_ATTRIBUTES = (
    "way",
    "service_sid",
    "conversation_sid",
    "unique_name",
    "sender",
    "recipient_hash",
)


def new_write_id() -> str:
    """The id of one receipt write, however many times it is sent (`WRITE_ID`)."""
    return uuid.uuid4().hex


def message_pk(message_sid: str) -> str:
    return f"MSG#{message_sid}"


def receipt_sk(receipt_sid: str) -> str:
    return f"RCPT#{receipt_sid}"


def pending_shard(message_sid: str) -> str:
    """The outbox index partition of a message's marks: stable across processes (not `hash`)."""
    return str(zlib.crc32(message_sid.encode()) % PENDING_SHARDS)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """Everything stored under one message: its receipts, its origin, its attempts (if root)."""

    receipts: dict[str, ReceiptState]
    origin: Origin | None
    attempts: dict[int, Attempt]


class Claim(StrEnum):
    CLAIMED = "claimed"  # this worker owns the attempt now
    TAKEN = "taken"  # the attempt exists already (sent, gave up, or claimed by another)
    SUPERSEDED = "superseded"  # the failure is no longer the receipt's latest truth


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


class ReceiptStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        ttl_days: int = 30,
        *,
        track_sent: bool = True,
    ) -> None:
        self._db = client
        self._table = table_name
        self._ttl_seconds = ttl_days * 86_400
        self._track_sent = track_sent  # False: ReconcileAfterMinutes=0, no reconciliation index

    # -- ingest --------------------------------------------------------------------------------

    def record(
        self, event: DeliveryEvent, now: float | None = None, write_id: str | None = None
    ) -> Transition:
        """Store `event` for its receipt; one conditional write unless the event is older.
        `write_id`: the same for every call that tries this one write again (ingest's own
        tries); by default this call's, which botocore's retries of the request share."""
        now = time.time() if now is None else now
        key = _receipt_key(event)
        write_id = write_id or new_write_id()  # recognises its own write on a retried request
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
            if not _conditional_failure(error):
                raise
            old = cast("Item | None", error.response.get("Item"))
            if old is None:  # DynamoDB always returns it when asked; never guess "new"
                raise
        if _string(old, WRITE_ID) == write_id:
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
            if not _conditional_failure(error):  # a newer one is there: a concurrent copy won
                raise

    # -- reads ----------------------------------------------------------------------------------

    def get_receipt(self, message_sid: str, receipt_sid: str) -> ReceiptState | None:
        answer = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": message_pk(message_sid)}, "sk": {"S": receipt_sk(receipt_sid)}},
            ConsistentRead=True,
        )
        return state_from_item(answer.get("Item"))

    def load_message(self, message_sid: str) -> MessageRecord:
        """One consistent Query of the message's partition."""
        receipts: dict[str, ReceiptState] = {}
        attempts: dict[int, Attempt] = {}
        origin = None
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": message_pk(message_sid)}},
            ConsistentRead=True,
        ):
            for item in page.get("Items", []):
                sk = _string(item, "sk")
                if sk.startswith("RCPT#"):
                    state = state_from_item(item)
                    if state is not None:
                        receipts[sk.removeprefix("RCPT#")] = state
                elif sk.startswith("ATTEMPT#"):
                    attempt = attempt_from_item(item)
                    attempts[attempt.number] = attempt
                elif sk == "ORIGIN":
                    origin = Origin(
                        root=_string(item, "root"),
                        retry_of=_string(item, "retry_of"),
                        attempt=int(_number(item["attempt"])),
                        first_sent_at=parse_time(_string(item, "first_sent_at"), "first_sent_at"),
                    )
        return MessageRecord(receipts, origin, attempts)

    def get_attempt(self, root: str, number: int) -> Attempt | None:
        key: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": message_pk(root)},
            "sk": {"S": f"ATTEMPT#{number:03d}"},
        }
        answer = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        item = answer.get("Item")
        return attempt_from_item(item) if item else None

    # -- the retry worker's attempts (DESIGN invariant 4) --------------------------------------

    def claim(
        self, chain: Chain, event: DeliveryEvent, now: int, intent: Intent | None = None
    ) -> Claim:
        """Claim `chain.attempt` of `chain.root`, only while `event` is still its receipt's latest
        truth: one transaction, so a receipt that turned `delivered` cannot be resent. The claim
        records `intent`: what is about to be created, and where (DESIGN invariant 8)."""
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": _receipt_key(event),
                            "ConditionExpression": "order_key = :order_key AND #status = :status",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                ":order_key": {"N": str(event.order_key)},
                                ":status": {"S": event.status},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_attempt_key(chain),
                                "state": {"S": AttemptState.CLAIMED.value},
                                "claimed_at": {"N": str(now)},
                                "failed_message_sid": {"S": event.message_sid},
                                "failed_receipt_sid": {"S": event.receipt_sid},
                                "error_code": {"N": str(event.error_code or 0)},
                                "first_sent_at": {"S": iso(chain.first_sent_at)},
                                "expires_at": {"N": str(now + self._ttl_seconds)},
                                **_intent_values(intent),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return Claim.SUPERSEDED
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return Claim.TAKEN
            raise  # a conflict with a concurrent transaction: let SQS retry the record
        return Claim.CLAIMED

    def take_over(
        self, chain: Chain, claimed_at: int, now: int, intent: Intent | None = None
    ) -> bool:
        """Take a stale claim (its worker died or timed out) if nobody else has meanwhile, with
        this worker's `intent` (None: it creates nothing, a give-up; the old intent stays)."""
        values: dict[str, AttributeValueTypeDef] = {
            ":now": {"N": str(now)},
            ":then": {"N": str(claimed_at)},
            ":claimed": {"S": AttemptState.CLAIMED.value},
        }
        sets, removes = ["claimed_at = :now"], []
        if intent is not None:
            given = _intent_values(intent)
            for name in INTENT_ATTRIBUTES:
                if name in given:
                    sets.append(f"{name} = :{name}")
                    values[f":{name}"] = given[name]
                else:
                    removes.append(name)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return self._conditional_update(
            _attempt_key(chain), expression, "#state = :claimed AND claimed_at = :then", values
        )

    def claim_conversation(self, chain: Chain, claimed_at: int, conversation_sid: str) -> bool:
        """Name the conversation a claim's message is about to be created in (an SMS fallback's,
        known only after the claim): before the create, so a claim that names none never
        created one. False: the claim is no longer this worker's (nothing may be created)."""
        return self._conditional_update(
            _attempt_key(chain),
            "SET conversation_sid = :conversation",
            "#state = :claimed AND claimed_at = :mine",
            {
                ":conversation": {"S": conversation_sid},
                ":mine": {"N": str(claimed_at)},
                ":claimed": {"S": AttemptState.CLAIMED.value},
            },
        )

    def release(self, chain: Chain, claimed_at: int) -> None:
        """Give a claim back when Twilio certainly did not send (429, 5xx, no connection)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=_attempt_key(chain),
                ConditionExpression="#state = :claimed AND claimed_at = :then",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":claimed": {"S": AttemptState.CLAIMED.value},
                    ":then": {"N": str(claimed_at)},
                },
            )
        except ClientError as error:
            if not _conditional_failure(error):
                raise

    def record_sent(
        self,
        chain: Chain,
        new_message_sid: str,
        retry_of: str,
        now: int,
        conversation_sid: str = "",
    ) -> None:
        """Link attempt and new message both ways, in one transaction (idempotent). The attempt
        also keeps the new message's conversation (its follow-up asks Twilio there)."""
        self._db.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _attempt_key(chain),
                        "UpdateExpression": "SET #state = :sent, new_message_sid = :new, "
                        "new_conversation_sid = :conversation, updated_at = :now",
                        "ConditionExpression": "#state IN (:claimed, :sent)",
                        "ExpressionAttributeNames": {"#state": "state"},
                        "ExpressionAttributeValues": {
                            ":sent": {"S": AttemptState.SENT.value},
                            ":claimed": {"S": AttemptState.CLAIMED.value},
                            ":new": {"S": new_message_sid},
                            ":conversation": {"S": conversation_sid},
                            ":now": {"N": str(now)},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "pk": {"S": message_pk(new_message_sid)},
                            "sk": {"S": "ORIGIN"},
                            "root": {"S": chain.root},
                            "retry_of": {"S": retry_of},
                            "attempt": {"N": str(chain.attempt)},
                            "first_sent_at": {"S": iso(chain.first_sent_at)},
                            "expires_at": {"N": str(now + self._ttl_seconds)},
                        },
                    }
                },
            ]
        )

    def mark_followed_up(self, root: str, number: int, now: int) -> bool:
        """Note that a sent attempt's follow-up has judged it: True the first time only.

        A follow-up may run more than once (SQS delivers at least once, and a redelivered retry
        record queues it again: RetryWorker._resume); asking Twilio and recording are idempotent,
        the verdict metric is not. One conditional UpdateItem per follow-up makes it so. An
        attempt that is not there (its TTL passed) has nothing to count against: True, so a
        verdict is counted rather than silently dropped."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": message_pk(root)}, "sk": {"S": f"ATTEMPT#{number:03d}"}},
                UpdateExpression="SET followed_up_at = :now",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(followed_up_at)",
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failure(error):
                raise
            return "Item" not in error.response  # no attempt: never create a stray one
        return True

    def record_give_up(
        self,
        chain: Chain,
        event: DeliveryEvent,
        reason: str,
        now: int,
        claimed_at: int | None = None,
        *,
        also: Sequence[TransactWriteItemTypeDef] = (),
    ) -> Attempt | None:
        """Record that `chain.attempt` will not be made. Only where nobody has the attempt, or
        by its claimant (`claimed_at`: this worker's own claim): another worker's claim may have
        sent. None when recorded; else the attempt in the way (decided, or claimed by another),
        read from the failed write itself.

        `also`: writes that belong to this decision and to no other (a suppression): one
        transaction with the give-up, so they happen only when this decision records it, and
        never without it."""
        item: dict[str, AttributeValueTypeDef] = {
            **_attempt_key(chain),
            "state": {"S": AttemptState.GAVE_UP.value},
            "reason": {"S": reason},
            "failed_message_sid": {"S": event.message_sid},
            "failed_receipt_sid": {"S": event.receipt_sid},
            "error_code": {"N": str(event.error_code or 0)},
            "first_sent_at": {"S": iso(chain.first_sent_at)},
            "updated_at": {"N": str(now)},
            "expires_at": {"N": str(now + self._ttl_seconds)},
        }
        request: PutItemInputTypeDef = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if claimed_at is not None:
            item["claimed_at"] = {"N": str(claimed_at)}
            request["ConditionExpression"] += " OR (#state = :claimed AND claimed_at = :mine)"
            request["ExpressionAttributeNames"] = {"#state": "state"}
            request["ExpressionAttributeValues"] = {
                ":claimed": {"S": AttemptState.CLAIMED.value},
                ":mine": {"N": str(claimed_at)},
            }
        if also:
            return self._give_up_with(request, also)
        try:
            self._db.put_item(**request)
        except ClientError as error:
            if not _conditional_failure(error):
                raise
            old = cast("Item | None", error.response.get("Item"))
            if old is None:  # DynamoDB returns it when asked; never guess
                raise
            return attempt_from_item(old)
        return None

    def _give_up_with(
        self, request: PutItemInputTypeDef, also: Sequence[TransactWriteItemTypeDef]
    ) -> Attempt | None:
        put: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._table,
                "Item": request["Item"],
                "ConditionExpression": request["ConditionExpression"],
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        if "ExpressionAttributeNames" in request:  # the claimant's own condition
            put["Put"]["ExpressionAttributeNames"] = request["ExpressionAttributeNames"]
            put["Put"]["ExpressionAttributeValues"] = request["ExpressionAttributeValues"]
        try:
            self._db.transact_write_items(TransactItems=[put, *also])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise  # a conflict with a concurrent transaction: let SQS retry the record
            old = cast("Item | None", reasons[0].get("Item"))
            if old is None:  # DynamoDB returns it when asked; never guess
                raise
            return attempt_from_item(old)
        return None

    def _conditional_update(
        self,
        key: dict[str, AttributeValueTypeDef],
        expression: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
    ) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _conditional_failure(error):
                return False
            raise
        return True

    def _query_shards(
        self, index: str, shard_key: str, sort_key: str, older_than: int
    ) -> Iterator[Item]:
        """Every entry of a sharded sparse index whose sort key is at most `older_than`: one
        Query per shard, reading only those entries (no Scan, no filter)."""
        paginator = self._db.get_paginator("query")
        for shard in range(PENDING_SHARDS):
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

    # -- reconciliation (issue 9) ---------------------------------------------------------------

    def stuck_sent(self, older_than: int) -> Iterator[StuckReceipt]:
        """Receipts at `sent` since `older_than` or before: one Query per shard of the sparse
        index, each reading only entries that old (no Scan, no filter)."""
        for item in self._query_shards(STUCK_INDEX, STUCK_SHARD, STUCK_SINCE, older_than):
            lookups = item.get(LOOKUPS)
            yield StuckReceipt(
                message_sid=_string(item, "pk").removeprefix("MSG#"),
                receipt_sid=_string(item, "sk").removeprefix("RCPT#"),
                conversation_sid=_string(item, "conversation_sid"),
                chat_service_sid=_string(item, "chat_service_sid"),
                order_key=int(_number(item["order_key"])),
                lookups=int(_number(lookups)) if lookups else 0,
                since=int(_number(item[STUCK_SINCE])),
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
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    "pk": {"S": message_pk(stuck.message_sid)},
                    "sk": {"S": receipt_sk(stuck.receipt_sid)},
                },
                UpdateExpression=expression,
                ConditionExpression=f"#status = :sent AND order_key = :order_key "
                f"AND attribute_exists({STUCK_SINCE})",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _conditional_failure(error):
                return None
            raise
        return left_alone

    # -- the outbox -----------------------------------------------------------------------------

    def pending_failures(self, older_than: int) -> Iterator[PendingFailure | UnreadableMark]:
        """Failures marked at or before `older_than` and not yet taken by the worker: one Query
        per shard of the sparse index, each reading only marks that old (no Scan, no filter).

        A marked item no job can be rebuilt from comes back as an `UnreadableMark`, in its place:
        raising would end the Query, and every mark after it would never be swept again."""
        for item in self._query_shards(PENDING_INDEX, PENDING_SHARD, PENDING_AT, older_than):
            try:
                event = event_from_item(item)
            except (MalformedEvent, KeyError, TypeError, ValueError) as error:
                yield UnreadableMark(_string(item, "pk"), _string(item, "sk"), repr(error))
                continue
            yield PendingFailure(event, int(_number(item[PENDING_AT])))

    def clear_pending(self, event: DeliveryEvent) -> bool:
        """Mark `event`'s failure as taken; False if the receipt has moved on since."""
        return self._update_pending(event, "REMOVE retry_pending_at", {})

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
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_receipt_key(event),
                UpdateExpression=expression,
                ConditionExpression="order_key = :order_key AND #status = :status" + condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":order_key": {"N": str(event.order_key)},
                    ":status": {"S": event.status},
                    **values,
                },
            )
        except ClientError as error:
            if _conditional_failure(error):
                return False
            raise
        return True


# -- item <-> domain ----------------------------------------------------------------------------


def _receipt_key(event: DeliveryEvent) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": message_pk(event.message_sid)}, "sk": {"S": receipt_sk(event.receipt_sid)}}


def _attempt_key(chain: Chain) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": message_pk(chain.root)}, "sk": {"S": f"ATTEMPT#{chain.attempt:03d}"}}


def attempt_from_item(item: Item) -> Attempt:
    first_sent = _string(item, "first_sent_at")
    claimed = item.get("claimed_at")
    return Attempt(
        root=_string(item, "pk").removeprefix("MSG#"),
        number=int(_string(item, "sk").removeprefix("ATTEMPT#")),
        state=AttemptState(_string(item, "state")),
        claimed_at=int(_number(claimed)) if claimed else 0,
        new_message_sid=_string(item, "new_message_sid"),
        new_conversation_sid=_string(item, "new_conversation_sid"),
        reason=_string(item, "reason"),
        first_sent_at=parse_time(first_sent, "first_sent_at") if first_sent else None,
        failed_message_sid=_string(item, "failed_message_sid"),
        intent=_intent(item),
    )


def _intent_values(intent: Intent | None) -> dict[str, AttributeValueTypeDef]:
    """A claim's intent as item attributes: the empty ones are left out."""
    if intent is None:
        return {}
    given = {
        "way": intent.way,
        "service_sid": intent.service_sid,
        "conversation_sid": intent.conversation_sid,
        "unique_name": intent.unique_name,
        "sender": intent.sender,
        "recipient_hash": intent.recipient_hash,
    }
    return {name: {"S": value} for name, value in given.items() if value}


def _intent(item: Item) -> Intent | None:
    """A claim's intent; None for a claim written before intents were recorded."""
    if "way" not in item:
        return None
    return Intent(
        way=_string(item, "way"),
        service_sid=_string(item, "service_sid"),
        conversation_sid=_string(item, "conversation_sid"),
        unique_name=_string(item, "unique_name"),
        sender=_string(item, "sender"),
        recipient_hash=_string(item, "recipient_hash"),
    )


def _history_value(entry: HistoryEntry) -> AttributeValueTypeDef:
    value: dict[str, AttributeValueTypeDef] = {"at": {"S": entry.at}}
    if entry.error_code is not None:
        value["code"] = {"N": str(entry.error_code)}
    return {"M": value}


def _number(value: AttributeValueTypeDef) -> str:
    return value["N"]


def _string(item: Item, name: str) -> str:
    value = item.get(name)
    return value["S"] if value else ""


def state_from_item(item: Item | None) -> ReceiptState | None:
    if not item or "status" not in item:
        return None
    history = {}
    for name, value in item.items():
        if name.startswith(HISTORY_PREFIX):
            entry: Any = value["M"]
            code = entry.get("code")
            history[name.removeprefix(HISTORY_PREFIX)] = HistoryEntry(
                at=entry["at"]["S"], error_code=int(code["N"]) if code else None
            )
    code = item.get("error_code")
    return ReceiptState(
        status=_string(item, "status"),
        order_key=int(_number(item["order_key"])),
        error_code=int(_number(code)) if code else None,
        history=history,
    )


def event_from_item(item: Item) -> DeliveryEvent:
    """The latest event of a stored receipt, as the webhook carried it."""
    code = item.get("error_code")
    return DeliveryEvent.from_dict(
        {
            "message_sid": _string(item, "pk").removeprefix("MSG#"),
            "receipt_sid": _string(item, "sk").removeprefix("RCPT#"),
            "conversation_sid": _string(item, "conversation_sid"),
            "status": _string(item, "status"),
            "error_code": int(_number(code)) if code else None,
            "date_updated": _string(item, "date_updated"),
            "date_created": _string(item, "date_created"),
            "account_sid": _string(item, "account_sid"),
            "chat_service_sid": _string(item, "chat_service_sid"),
            "participant_sid": _string(item, "participant_sid"),
            "channel_message_sid": _string(item, "channel_message_sid"),
        }
    )


def _conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
