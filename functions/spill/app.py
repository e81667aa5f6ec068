"""SpillFunction: the SpillQueue batch, receipts ingest verified but could not write. Wiring only;
see redeliver.adapters.sqs.spill and redeliver.usecases.recorder.

Each record goes through the same `Recorder` as a webhook. A record that raises (DynamoDB still
failing, a malformed body) is reported failed and comes back after the visibility timeout; after
maxReceiveCount it moves to SpillDLQ (alarmed).
"""

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.adapters.aws import dynamodb_client, sqs_client
from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.sqs.batch import BatchResponse, partial_response
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.sqs.spill import parse_spilled
from redeliver.observability import count, logger, metrics
from redeliver.settings import Settings
from redeliver.usecases.recorder import Recorder

settings = Settings.from_env()
recorder = Recorder(
    Receipts(
        dynamodb_client(),
        settings.table_name,
        settings.receipt_ttl_days,
        track_sent=settings.reconcile_after_minutes > 0,
    ),
    RetryQueue(sqs_client(), settings.retry_queue_url),
)


def record_handler(record: Mapping[str, Any]) -> str:
    try:
        result = recorder.record(parse_spilled(record["body"]))
    except Exception:
        logger.exception("spilled receipt not replayed; it comes back", extra=_ids(record))
        raise
    count("SpillReplayed")
    return result.transition.change.value if result.transition else "ignored"


def _ids(record: Mapping[str, Any]) -> dict[str, object]:
    attributes = record.get("attributes") or {}
    return {
        "sqs_message_id": record.get("messageId"),
        "receive_count": attributes.get("ApproximateReceiveCount"),
    }


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    # The same partial-batch contract as RetryFunction (redeliver.adapters.sqs.batch): a failed
    # record goes back to SpillQueue, and after maxReceiveCount to SpillDLQ (alarmed).
    return partial_response(event, record_handler)
