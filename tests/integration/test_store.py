"""The conditional write in ReceiptStore against the pure model in redeliver.receipts.

Any order and any duplication of one receipt's events must leave DynamoDB holding exactly the
state `receipts.apply` computes, with at most one enqueue per event that became the latest.
"""

from __future__ import annotations

import itertools

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redeliver.receipts import DeliveryEvent, apply, parse_delivery_event
from redeliver.store import ReceiptStore
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
    store = ReceiptStore(boto3.client("dynamodb"), stack.outputs["ReceiptsTableName"])
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
        assert store.record(event) == expected
    assert store.get_receipt(events[0].message_sid, events[0].receipt_sid) == model
