"""RetryFunction: the RetryQueue batch. Wiring only; see redeliver.usecases.retry.worker.

Partial batch responses (redeliver.adapters.sqs.batch): a record that raises (a transient Twilio
fault, another worker's claim, a malformed job) is reported failed and comes back when the worker
set it to (else after the queue's visibility timeout); after maxReceiveCount it moves to RetryDLQ.
The others are deleted.
A record is started only while the invocation has time for its worst case; the rest are queued
again as new messages (a deferral costs no receive) and succeed.

A follow-up records the receipts Twilio reports for a sent retry through ingest's `Recorder`, on
the same table and RetryQueue (a failed retry is queued for its next attempt).
"""

import gc
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.adapters.aws import dynamodb_client, sqs_client
from redeliver.adapters.dynamodb.attempts import Attempts
from redeliver.adapters.dynamodb.outbox import Outbox
from redeliver.adapters.dynamodb.outcome_events import OutcomeEventItems
from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.suppressions import Suppressions
from redeliver.adapters.sqs.batch import BatchResponse, partial_response
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import ConversationsGateway
from redeliver.adapters.twilio.credentials import CredentialSource
from redeliver.domain.policy import rules_summary
from redeliver.domain.policy_parse import parse_policy
from redeliver.observability import logger, metrics
from redeliver.settings import Settings
from redeliver.usecases.recorder import Recorder
from redeliver.usecases.retry.worker import RetryWorker

settings = Settings.from_env()
policy = parse_policy(settings.retry_policy, retention_days=settings.receipt_ttl_days)
logger.info(
    "retry policy", extra={"max_attempts": policy.max_attempts, "rules": rules_summary(policy)}
)
dynamodb = dynamodb_client()  # one client (one connection pool) for every aggregate of the table
receipts = Receipts(
    dynamodb,
    settings.table_name,
    settings.receipt_ttl_days,
    track_sent=settings.reconcile_after_minutes > 0,  # a follow-up records receipts too
)
queue = RetryQueue(sqs_client(), settings.retry_queue_url)
worker = RetryWorker(
    attempts=Attempts(dynamodb, settings.table_name, settings.receipt_ttl_days),
    outbox=Outbox(dynamodb, settings.table_name),
    queue=queue,
    twilio=ConversationsGateway(
        CredentialSource(
            settings.twilio_secret_arn,
            settings.secret_max_age_seconds,
            settings.secret_stale_max_seconds,
        ),
        base_url=settings.twilio_conversations_url,
        timeout=settings.twilio_timeout_seconds,
        webhook_enabled=settings.twilio_webhook_enabled,
    ),
    policy=policy,
    suppressions=Suppressions(dynamodb, settings.table_name),
    claim_stale_seconds=settings.claim_stale_seconds,
    twilio_timeout_seconds=settings.twilio_timeout_seconds,
    function_timeout_seconds=settings.retry_timeout_seconds,
    follow_up_seconds=settings.follow_up_seconds,
    recorder=Recorder(receipts, queue),
    # EventBusName set: each decision's event is written with its record, the pipe publishes it
    events=OutcomeEventItems(settings.table_name, settings.receipt_ttl_days)
    if settings.outcome_events
    else None,
)
# What init made (modules, boto3's service models, the clients) lives as long as the container:
# frozen (moved to a permanent generation), it is not traversed again by the collections the
# records' allocations trigger. Unfrozen, the first record paid ~15 ms of CPU for a collection
# over it (bench retry, "its first record"). Garbage made above is kept; there is little.
gc.freeze()


def record_handler(record: Mapping[str, Any], lambda_context: LambdaContext) -> str:
    seconds_left = lambda_context.get_remaining_time_in_millis() / 1000
    return worker.process_record(
        record["body"], record["receiptHandle"], seconds_left
    ).outcome.value


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    # A batch whose every record failed is reported like any other (all items back to SQS), not
    # raised: Lambda's Errors metric, and RetryErrorsAlarm, then mean a crash or a timeout, while
    # record failures are counted as RetryError. (Powertools' BatchProcessor did the same with
    # raise_on_entire_batch_failure=False; redeliver.adapters.sqs.batch says why it is no longer
    # imported.)
    return partial_response(event, lambda record: record_handler(record, context))
