"""DynamoDB adapter: retry attempts and the links of a retry chain (DESIGN invariants 4 and 8).

All under the message partitions of the one table (`table.py`):

| pk            | sk              | what                                                  | by    |
|---------------|-----------------|-------------------------------------------------------|-------|
| the root      | `ATTEMPT#<nnn>` | attempt n's `state` (claimed, sent, gave_up), claim   | retry |
|               |                 | time, outcome, the new message (the forward link); a  |       |
|               |                 | claim's intent (`INTENT_ATTRIBUTES`: way, service,    |       |
|               |                 | conversation or unique name, sender, recipient hash); |       |
|               |                 | a follow-up's `followed_up_at`                        |       |
| a new message | `ORIGIN`        | its root, the message it retried, the attempt number  | retry |
|               |                 | (the backward link)                                   |       |

An attempt is claimed before anything is created (`claim`: one transaction with a check that the
failure is still its receipt's latest truth), so at most one new message exists per attempt;
`record_sent` links the two messages both ways in one transaction, and `record_give_up` records
that an attempt will not be made, only where nobody has it or by its own claimant.

`load_message` reads a whole message partition (its receipts, its origin, its attempts) in one
consistent Query: the worker's one look at a chain before it decides.

Longer than our rooms usually are (about 450 lines) on purpose: `Attempts` says why it is one
piece, and what else is here is its item shape, read and written by it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from redeliver.adapters.dynamodb.receipts import state_from_item
from redeliver.adapters.dynamodb.table import (
    ATTEMPT_PREFIX,
    MESSAGE_PREFIX,
    ORIGIN,
    RECEIPT_PREFIX,
    Item,
    Key,
    TableAggregate,
    attempt_key,
    conditional_failure,
    int_of,
    message_pk,
    receipt_key,
    text_of,
)
from redeliver.domain.chain import Attempt, AttemptState, Chain, Intent, Origin
from redeliver.domain.receipts import DeliveryEvent, ReceiptState, iso, parse_time

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutItemInputTypeDef,
        TransactWriteItemTypeDef,
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


class Attempts(TableAggregate):
    """An attempt's whole life: claimed, taken over, released, sent, given up, followed up.

    One piece on purpose (about 300 lines): each step is a condition on the step before, and
    reading them side by side is how one checks that no two of them can both win (a give-up and a
    send, two takeovers of one stale claim); split, the conditions would live in different rooms.
    """

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
                sk = text_of(item, "sk")
                if sk.startswith(RECEIPT_PREFIX):
                    state = state_from_item(item)
                    if state is not None and state.status:  # not only unnamed statuses
                        receipts[sk.removeprefix(RECEIPT_PREFIX)] = state
                elif sk.startswith(ATTEMPT_PREFIX):
                    attempt = attempt_from_item(item)
                    attempts[attempt.number] = attempt
                elif sk == ORIGIN:
                    origin = _origin(item)
        return MessageRecord(receipts, origin, attempts)

    def get_attempt(self, root: str, number: int) -> Attempt | None:
        answer = self._db.get_item(
            TableName=self._table, Key=attempt_key(root, number), ConsistentRead=True
        )
        item = answer.get("Item")
        return attempt_from_item(item) if item else None

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
                            "Key": receipt_key(event.message_sid, event.receipt_sid),
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
                                **_chain_key(chain),
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
            _chain_key(chain), expression, "#state = :claimed AND claimed_at = :then", values
        )

    def claim_conversation(self, chain: Chain, claimed_at: int, conversation_sid: str) -> bool:
        """Name the conversation a claim's message is about to be created in (an SMS fallback's,
        known only after the claim): before the create, so a claim that names none never
        created one. False: the claim is no longer this worker's (nothing may be created)."""
        return self._conditional_update(
            _chain_key(chain),
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
                Key=_chain_key(chain),
                ConditionExpression="#state = :claimed AND claimed_at = :then",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":claimed": {"S": AttemptState.CLAIMED.value},
                    ":then": {"N": str(claimed_at)},
                },
            )
        except ClientError as error:
            if not conditional_failure(error):
                raise

    def record_sent(
        self,
        chain: Chain,
        new_message_sid: str,
        retry_of: str,
        now: int,
        conversation_sid: str = "",
        *,
        events: Sequence[TransactWriteItemTypeDef] = (),
    ) -> None:
        """Link attempt and new message both ways, in one transaction (idempotent). The attempt
        also keeps the new message's conversation (its follow-up asks Twilio there).

        `events`: the decision's outcome event items (insert-only), in the same transaction. A
        record written again (a stale claim's marker search finding the message after the record
        died before its answer) finds them there: its transaction is cancelled by them alone, and
        that means the decision is recorded already (the items are only ever written with it)."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _chain_key(chain),
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
                        "sk": {"S": ORIGIN},
                        "root": {"S": chain.root},
                        "retry_of": {"S": retry_of},
                        "attempt": {"N": str(chain.attempt)},
                        "first_sent_at": {"S": iso(chain.first_sent_at)},
                        "expires_at": {"N": str(now + self._ttl_seconds)},
                    },
                }
            },
        ]
        if not events:
            self._db.transact_write_items(TransactItems=items)
            return
        try:
            self._db.transact_write_items(TransactItems=[*items, *events])
        except ClientError as error:
            if not _cancelled_by_events_only(error, len(items)):
                raise

    def mark_followed_up(self, root: str, number: int, now: int) -> bool:
        """Note that a sent attempt's follow-up has judged it: True the first time only.

        A follow-up may run more than once (SQS delivers at least once, and a redelivered retry
        record queues it again: usecases/retry/claims.py, Claims.resume); asking Twilio and
        recording are idempotent, the verdict metric is not. One conditional UpdateItem per
        follow-up makes it so. An attempt that is not there (its TTL passed) has nothing to
        count against: True, so a verdict is counted rather than silently dropped."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=attempt_key(root, number),
                UpdateExpression="SET followed_up_at = :now",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(followed_up_at)",
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not conditional_failure(error):
                raise
            return "Item" not in error.response  # no attempt: never create a stray one
        return True

    def publish(self, event: TransactWriteItemTypeDef) -> None:
        """An outcome event's item written alone (adapters/dynamodb/outcome_events.py): for a
        decision whose record is Twilio's own (a retry's receipt, recorded by the Recorder), not a
        write of ours. Insert-only: an item already there is that event, published before."""
        put = event["Put"]
        try:
            self._db.put_item(
                TableName=put["TableName"],
                Item=put["Item"],
                ConditionExpression=put["ConditionExpression"],
            )
        except ClientError as error:
            if not conditional_failure(error):
                raise

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
            **_chain_key(chain),
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
            if not conditional_failure(error):
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


def _cancelled_by_events_only(error: ClientError, decision_items: int) -> bool:
    """A transaction cancelled only because its outcome event items (after the first
    `decision_items`) exist already: the decision they belong to was recorded before."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    codes = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
    if len(codes) <= decision_items:
        return False
    ours, theirs = codes[:decision_items], codes[decision_items:]
    return (
        all(c in ("None", "") for c in ours)
        and "ConditionalCheckFailed" in theirs
        and all(c in ("None", "", "ConditionalCheckFailed") for c in theirs)
    )


# -- item <-> domain ----------------------------------------------------------------------------


def attempt_from_item(item: Item) -> Attempt:
    first_sent = text_of(item, "first_sent_at")
    claimed = item.get("claimed_at")
    return Attempt(
        root=text_of(item, "pk").removeprefix(MESSAGE_PREFIX),
        number=int(text_of(item, "sk").removeprefix(ATTEMPT_PREFIX)),
        state=AttemptState(text_of(item, "state")),
        claimed_at=int_of(claimed) if claimed else 0,
        new_message_sid=text_of(item, "new_message_sid"),
        new_conversation_sid=text_of(item, "new_conversation_sid"),
        reason=text_of(item, "reason"),
        first_sent_at=parse_time(first_sent, "first_sent_at") if first_sent else None,
        failed_message_sid=text_of(item, "failed_message_sid"),
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
        way=text_of(item, "way"),
        service_sid=text_of(item, "service_sid"),
        conversation_sid=text_of(item, "conversation_sid"),
        unique_name=text_of(item, "unique_name"),
        sender=text_of(item, "sender"),
        recipient_hash=text_of(item, "recipient_hash"),
    )


def _chain_key(chain: Chain) -> Key:
    return attempt_key(chain.root, chain.attempt)


def _origin(item: Item) -> Origin:
    return Origin(
        root=text_of(item, "root"),
        retry_of=text_of(item, "retry_of"),
        attempt=int_of(item["attempt"]),
        first_sent_at=parse_time(text_of(item, "first_sent_at"), "first_sent_at"),
    )
