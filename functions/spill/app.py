"""SpillFunction: the SpillQueue batch, receipts ingest verified but could not write. Wiring only;
see redeliver.spill and redeliver.ingest.

Each record goes through the same `Recorder` as a webhook. A record that raises (DynamoDB still
failing, a malformed body) is reported failed and comes back after the visibility timeout; after
maxReceiveCount it moves to SpillDLQ (alarmed).
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.aws import dynamodb_client, sqs_client
from redeliver.ingest import Recorder
from redeliver.observability import count, logger, metrics
from redeliver.retry_queue import RetryQueue
from redeliver.settings import Settings
from redeliver.spill import parse_spilled
from redeliver.store import ReceiptStore

settings = Settings.from_env()
recorder = Recorder(
    ReceiptStore(
        dynamodb_client(),
        settings.table_name,
        settings.receipt_ttl_days,
        track_sent=settings.reconcile_after_minutes > 0,
    ),
    RetryQueue(sqs_client(), settings.retry_queue_url),
)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> str:
    result = recorder.record(parse_spilled(record.body))
    count("SpillReplayed")
    return result.transition.change.value if result.transition else "ignored"


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
