"""SweepFunction: every few minutes, queue failures whose SQS send was lost. See
redeliver.usecases.sweep."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.adapters.aws import dynamodb_client, sqs_client
from redeliver.adapters.dynamodb.outbox import Outbox
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.observability import logger, metrics
from redeliver.settings import Settings
from redeliver.usecases.sweep import sweep

settings = Settings.from_env()
outbox = Outbox(dynamodb_client(), settings.table_name)
queue = RetryQueue(sqs_client(), settings.retry_queue_url)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return {"swept": sweep(outbox, queue, settings.sweep_grace_seconds)}
