"""SQS adapter: SpillQueue, where ingest puts a verified receipt it could not write.

Twilio does not resend a webhook, so a DynamoDB fault (throttling, an outage) after the signature
check must not lose the receipt: the event, as verified and parsed, goes on this queue and Twilio
gets its 200. functions/spill replays it through the same `Recorder` as ingest; a record that
keeps failing ends in SpillDLQ (alarmed). The body is the event's own `to_dict` form, versioned.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from redeliver.domain.receipts import DeliveryEvent, MalformedEvent

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SPILL_VERSION = 1


def spilled_body(event: DeliveryEvent) -> str:
    return json.dumps(
        {"v": SPILL_VERSION, "kind": "spilled_receipt", "event": event.to_dict()},
        separators=(",", ":"),
    )


def parse_spilled(text: str) -> DeliveryEvent:
    """The event a spill message carries, or MalformedEvent."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(f"spilled receipt is not JSON: {exc}") from None
    if (
        not isinstance(body, dict)
        or body.get("v") != SPILL_VERSION
        or body.get("kind") != "spilled_receipt"
    ):
        raise MalformedEvent("spilled receipt has no supported version")
    return DeliveryEvent.from_dict(body.get("event") or {})


class SpillQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, event: DeliveryEvent) -> str:
        answer = self._sqs.send_message(QueueUrl=self._url, MessageBody=spilled_body(event))
        return answer["MessageId"]
