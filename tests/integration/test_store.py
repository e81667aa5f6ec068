"""The conditional write in Receipts against the pure model in redeliver.domain.receipts.

Any order and any duplication of one receipt's events must leave DynamoDB holding exactly the
state `receipts.apply` computes, with at most one enqueue per event that became the latest.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redeliver.adapters.dynamodb.attempts import Attempts, Claim
from redeliver.adapters.dynamodb.outbox import PENDING_PROJECTION
from redeliver.adapters.dynamodb.receipts import HISTORY_PREFIX, Receipts
from redeliver.adapters.dynamodb.table import PENDING_AT, PENDING_SHARD
from redeliver.domain.chain import Chain, Intent
from redeliver.domain.receipts import DeliveryEvent, apply, parse_delivery_event
from tools.samples import receipt_fields
from tools.stack import DeployedStack

STATUSES = ["sent", "delivered", "read", "undelivered", "failed", "carrier_ack"]
_messages = itertools.count()


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[str, int]]:
    distinct = draw(
        st.sets(st.tuples(st.sampled_from(STATUSES), st.integers(0, 3)), min_size=1, max_size=6)
    )
    order = draw(st.permutations(sorted(distinct)))
    duplicates = draw(st.lists(st.sampled_from(sorted(distinct)), max_size=4))
    return [*order, *duplicates] if draw(st.booleans()) else [*duplicates, *order]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deliveries())
def test_dynamodb_matches_the_reference_model(
    stack: DeployedStack, sequence: list[tuple[str, int]]
) -> None:
    receipts = Receipts(boto3.client("dynamodb"), stack.outputs["ReceiptsTableName"])
    message = f"prop-{next(_messages)}"  # a fresh receipt per example, in the same table
    events: list[DeliveryEvent] = [
        parse_delivery_event(
            receipt_fields(
                status,
                message=message,
                updated=f"2026-11-27T10:00:0{second}Z",
                error_code=30003 if status in ("undelivered", "failed") else None,
            )
        )
        for status, second in sequence
    ]
    model = None
    for event in events:
        model, expected = apply(model, event)
        assert receipts.record(event) == expected
    assert receipts.get_receipt(events[0].message_sid, events[0].receipt_sid) == model


# -- the outbox index's write cost -------------------------------------------------------------


def attribute_size(name: str, value: Any) -> int:
    """DynamoDB's documented item-size rules (moto does not meter capacity)."""
    return len(name.encode()) + _value_size(value)


def _value_size(value: Any) -> int:
    [(kind, content)] = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":  # one byte per two significant digits, plus one
        digits = content.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "M":  # 3 bytes, plus each element and one byte for it
        return 3 + sum(attribute_size(k, v) + 1 for k, v in content.items())
    raise AssertionError(kind)


INDEX_ENTRY_OVERHEAD = 100  # bytes DynamoDB adds to each index entry


def index_write_units(item: dict[str, Any], attributes: set[str] | None) -> tuple[int, int]:
    """(bytes, write units) of `item`'s index entry: all of it, or keys + `attributes`."""
    kept = item if attributes is None else {k: v for k, v in item.items() if k in attributes}
    size = sum(attribute_size(k, v) for k, v in kept.items()) + INDEX_ENTRY_OVERHEAD
    return size, -(-size // 1024)


def test_a_pending_failure_costs_one_index_write_unit(
    stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The largest pending receipt: every status in its history, every optional field set."""
    receipts = Receipts(boto3.client("dynamodb"), stack.outputs["ReceiptsTableName"])
    for second, status in enumerate(("sent", "delivered", "read", "undelivered", "failed")):
        failed = status in ("undelivered", "failed")
        receipts.record(
            parse_delivery_event(
                receipt_fields(
                    status,
                    message="wcu",
                    updated=f"2026-11-27T10:00:0{second}Z",
                    error_code=63016 if failed else None,
                )
            )
        )
    [item] = boto3.client("dynamodb").scan(TableName=stack.outputs["ReceiptsTableName"])["Items"]
    assert item["status"] == {"S": "failed"}
    keys = {"pk", "sk", PENDING_SHARD, PENDING_AT}
    included = index_write_units(item, keys | set(PENDING_PROJECTION))
    everything = index_write_units(item, None)
    with capsys.disabled():
        print(f"\nindex entry of a pending failure: INCLUDE {included}, ALL {everything} (B, WCU)")
    assert included[1] == 1
    assert included[0] < everything[0]
    # What the item gains over time (history, TTL) is not projected: no index write for it.
    assert not any(k.startswith(HISTORY_PREFIX) for k in PENDING_PROJECTION)
    assert "expires_at" not in PENDING_PROJECTION


def test_a_claims_intent_is_kept_replaced_by_a_take_over_and_named_only_by_its_claimant(
    stack: DeployedStack,
) -> None:
    """DESIGN invariant 8: the claim holds what its claimant is about to create; a take-over
    holds the new claimant's; a conversation is noted only under the claim it belongs to."""
    dynamodb, table = boto3.client("dynamodb"), stack.outputs["ReceiptsTableName"]
    attempts = Attempts(dynamodb, table)
    event = parse_delivery_event(receipt_fields("failed", message="intent", error_code=63024))
    Receipts(dynamodb, table).record(event)
    chain = Chain(event.message_sid, 1, event.date_created)
    sms = Intent(
        "fallback_sms", "IS1", unique_name="redeliver-sms-x-1", sender="+1", recipient_hash="h"
    )
    assert attempts.claim(chain, event, 100, sms) is Claim.CLAIMED
    claimed = attempts.get_attempt(chain.root, 1)
    assert claimed is not None
    assert (claimed.intent, claimed.failed_message_sid) == (sms, event.message_sid)
    assert not attempts.claim_conversation(chain, 99, "CH1")  # not this claim's
    assert attempts.claim_conversation(chain, 100, "CH1")
    noted = attempts.get_attempt(chain.root, 1)
    assert noted is not None
    assert noted.intent == replace(sms, conversation_sid="CH1")
    same = Intent("retry", "IS1", "CH2")
    assert attempts.take_over(chain, 100, 300, same)
    taken = attempts.get_attempt(chain.root, 1)
    assert taken is not None
    assert (taken.claimed_at, taken.intent) == (300, same)
    assert attempts.take_over(chain, 300, 500)  # a give-up's: creates nothing, the intent stays
    kept = attempts.get_attempt(chain.root, 1)
    assert kept is not None
    assert (kept.claimed_at, kept.intent) == (500, same)
