"""An SQS batch with partial failures (`ReportBatchItemFailures`): one call per record, and
the messageIds of those that raised.

Powertools' `BatchProcessor` + `process_partial_response` did this for RetryFunction at
first, and is what we would use by default. Importing `aws_lambda_powertools.utilities.batch`
costs about 20 ms of a retry container's cold start (10 % of the ~0.2 s floor of Python,
boto3 and the Twilio client), and every cold container pays it: its base module imports asyncio
(for the async processor) and, through the DynamoDB, Kinesis and Kafka record classes, every
event data class Powertools ships. The contract itself is a loop, so it is written here, with
the same behaviour as the processor we used (`EventType.SQS`,
`raise_on_entire_batch_failure=False`):

- records run in order, each whatever the one before did; an `Exception` from one marks that
  record failed (the record handler logs and counts its own failures, as it did before);
- a batch whose every record failed is answered like any other (all listed, nothing raised), so
  Lambda's Errors metric means a crash or a timeout;
- an event without a `Records` list is not an SQS batch: raised, as Powertools raises
  `UnexpectedBatchTypeError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict


class ItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


class NotAnSqsBatch(ValueError):
    """The event has no `Records` list."""


def partial_response(
    event: Mapping[str, Any], record_handler: Callable[[Mapping[str, Any]], object]
) -> BatchResponse:
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise NotAnSqsBatch("Invalid event format: an SQS batch has a non-empty Records list")
    failures: list[ItemFailure] = []
    for record in records:
        try:
            record_handler(record)
        except Exception:  # any failure of a record is reported, not raised
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
