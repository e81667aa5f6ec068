"""Where real AWS behaves as moto never does, met by the store's newer writes.

moto answers every request once; on AWS, botocore's standard retry mode sends a request again
when its answer was lost (a read timeout, a connection reset, a 500 after the write), and
DynamoDB may have applied the first try. `AnswerLost` replays that explicitly.
"""

from __future__ import annotations

from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.domain.receipts import Change, parse_delivery_event
from tests.integration.resources import AnswerLost, Resources
from tools.samples import receipt_fields

NOW = 1_800_000_000


def test_an_unknown_status_whose_write_answer_was_lost_is_still_counted_as_unknown(
    resources: Resources,
) -> None:
    """`_record_unknown`'s retried UpdateItem meets its own first try: the condition on the
    history entry fails (same `at`) and the item returned holds the entry just written, which
    read as a duplicate: the status Twilio's spec does not name went uncounted (no
    UnknownStatus metric, no warning), though this webhook was its only arrival."""
    for before in (None, "sent"):
        message = f"unknown-{before}"
        if before:
            Receipts(resources.dynamodb, resources.table).record(
                parse_delivery_event(
                    receipt_fields(
                        before, message=message, receipt=message, updated="2026-11-27T09:59:59Z"
                    )
                ),
                now=NOW,
            )
        event = parse_delivery_event(
            receipt_fields(
                "delivered_to_carrier",
                message=message,
                receipt=message,
                updated="2026-11-27T10:00:00Z",
            )
        )
        lossy = AnswerLost(resources.dynamodb)
        transition = Receipts(lossy, resources.table).record(event, now=NOW)  # type: ignore[arg-type]
        assert lossy.lost == 1
        assert transition.change is Change.UNKNOWN, before
        assert transition.previous_status == before
        # Twilio's own resend of the same event is still a duplicate.
        again = Receipts(resources.dynamodb, resources.table).record(event, now=NOW)
        assert again.change is Change.DUPLICATE
