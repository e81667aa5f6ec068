"""ReconcileFunction: every ReconcileEveryMinutes, ask Twilio about receipts stuck at `sent` and
record what it reports. Wiring only; see redeliver.usecases.reconcile."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.adapters.aws import dynamodb_client, sqs_client
from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.reconciliation import StuckReceipts
from redeliver.adapters.dynamodb.tracked import TrackedMessages
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import ConversationsGateway
from redeliver.adapters.twilio.credentials import CredentialSource
from redeliver.observability import logger, metrics
from redeliver.settings import Settings
from redeliver.usecases.reconcile import Reconciler
from redeliver.usecases.recorder import Recorder

settings = Settings.from_env()
dynamodb = dynamodb_client()
receipts = Receipts(
    dynamodb,
    settings.table_name,
    settings.receipt_ttl_days,
    track_sent=settings.reconcile_after_minutes > 0,
)
reconciler = Reconciler(
    stuck=StuckReceipts(dynamodb, settings.table_name),
    receipts=receipts,
    twilio=ConversationsGateway(
        CredentialSource(
            settings.twilio_secret_arn,
            settings.secret_max_age_seconds,
            settings.secret_stale_max_seconds,
        ),
        base_url=settings.twilio_conversations_url,
        timeout=settings.twilio_timeout_seconds,
    ),
    recorder=Recorder(receipts, RetryQueue(sqs_client(), settings.retry_queue_url)),
    after_seconds=settings.reconcile_after_minutes * 60,
    max_lookups=settings.reconcile_max_lookups,
    # TrackMessages' tracked messages share the index; wired whatever the parameter is now, so
    # those tracked before it was turned off are still seen to the end
    tracked=TrackedMessages(dynamodb, settings.table_name, settings.receipt_ttl_days),
)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    report = reconciler.run(
        lambda: context.get_remaining_time_in_millis() / 1000,
        margin=2 * settings.twilio_timeout_seconds,  # a lookup may page: room for two requests
    )
    return {
        "messages": report.messages,
        "recorded": report.recorded,
        "failures": report.failures,
        "left_alone": report.left_alone,
        "errors": report.errors,
        "refused": report.refused,
        "skipped": len(report.skipped),
        "tracked_received": report.tracked_received,
        "tracked_reconciled": report.tracked_reconciled,
    }
