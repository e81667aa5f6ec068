"""IngestFunction: the `POST /twilio/delivery-receipts` route. Wiring only; see
redeliver.usecases.ingest.

The HTTP API routes only that method and path here, so there is no router: the event data class
and the one place below that maps outcomes to HTTP answers. (APIGatewayHttpResolver and the
Powertools Tracer would add about 0.1 s and 0.3 s to every cold start: `make bench`.)
"""

import gc
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, event_source
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.adapters.aws import WEBHOOK, dynamodb_client, secrets_client, sqs_client
from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.tracked import TrackedMessages
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.sqs.spill import SpillQueue
from redeliver.adapters.twilio.credentials import CredentialSource
from redeliver.adapters.twilio.signature import SignatureVerifier, signed_url
from redeliver.domain.receipts import MalformedEvent
from redeliver.observability import count, logger, metrics
from redeliver.settings import Settings
from redeliver.usecases.ingest import Ingest, SignatureRejected, WebhookRequest

settings = Settings.from_env()
sqs = sqs_client(WEBHOOK)
dynamodb = dynamodb_client(WEBHOOK)
ingest = Ingest(
    verifier=SignatureVerifier(
        CredentialSource(
            settings.twilio_secret_arn,
            settings.secret_max_age_seconds,
            settings.secret_stale_max_seconds,
            # one request of at most 1.3 s: a hanging Secrets Manager leaves time for the
            # last good token (redeliver.adapters.twilio.credentials) and the write, inside the 4 s
            provider=SecretsProvider(boto3_client=secrets_client(WEBHOOK)),
        )
    ),
    receipts=Receipts(
        dynamodb,
        settings.table_name,
        settings.receipt_ttl_days,
        track_sent=settings.reconcile_after_minutes > 0,
    ),
    queue=RetryQueue(sqs, settings.retry_queue_url),
    spill=SpillQueue(sqs, settings.spill_queue_url) if settings.spill_queue_url else None,
    # TrackMessages: onMessageAdded recorded (only where reconciliation runs: template.yaml)
    tracked=(
        TrackedMessages(dynamodb, settings.table_name, settings.receipt_ttl_days)
        if settings.track_messages and settings.reconcile_after_minutes > 0
        else None
    ),
)
# What init made (modules, botocore's service models, the clients) lives as long as the container:
# frozen, the collections that each receipt's allocations trigger do not traverse it again (as in
# functions/retry/app.py). Without it, those collections were a tenth of a receipt's CPU on
# average in `make bench` (they come in bursts, every few hundred receipts).
gc.freeze()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEventV2)
def lambda_handler(event: APIGatewayProxyEventV2, context: LambdaContext) -> dict[str, Any]:
    try:
        ingest.receive(
            webhook_request(event), lambda: context.get_remaining_time_in_millis() / 1000
        )
    except SignatureRejected as error:
        logger.warning("signature rejected", extra={"reason": error.reason})
        count("SignatureRejected")
        return answer(403, "forbidden")
    except MalformedEvent as error:
        logger.warning("bad request", extra={"reason": str(error)})
        count("BadRequests")
        return answer(400, str(error))
    except Exception:
        # The write and the spill both failed: Twilio will not resend, so this is alarmed.
        logger.exception("ingest fault")
        count("IngestFaults")
        return answer(500, "internal error")
    return answer(200, "")


def webhook_request(event: APIGatewayProxyEventV2) -> WebhookRequest:
    try:
        body = event.decoded_body or ""
    except ValueError:  # not base64, or not UTF-8: nothing Twilio signed
        raise SignatureRejected("undecodable") from None
    headers = event.headers  # a new dict on each access: read it once
    return WebhookRequest(
        url=signed_url(
            event.request_context.domain_name,
            event.raw_path,
            event.raw_query_string,
            settings.webhook_base_url,
        ),
        body=body,
        signature=headers.get("x-twilio-signature"),
        signature_settings=headers.get("x-twilio-webhooks-signature-settings"),
    )


def answer(status: int, body: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "text/plain"}, "body": body}
