"""IngestFunction: the `POST /twilio/delivery-receipts` route. Wiring only; see redeliver.ingest."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from redeliver.aws import dynamodb_client, sqs_client
from redeliver.credentials import CredentialSource
from redeliver.ingest import Ingest, SignatureRejected, WebhookRequest
from redeliver.observability import logger, metrics, tracer
from redeliver.receipts import MalformedEvent
from redeliver.retry_queue import RetryQueue
from redeliver.settings import Settings
from redeliver.signature import SignatureVerifier, signed_url
from redeliver.store import ReceiptStore

ROUTE = "/twilio/delivery-receipts"

settings = Settings.from_env()
ingest = Ingest(
    verifier=SignatureVerifier(
        CredentialSource(settings.twilio_secret_arn, settings.secret_max_age_seconds)
    ),
    store=ReceiptStore(dynamodb_client(), settings.table_name, settings.receipt_ttl_days),
    queue=RetryQueue(sqs_client(), settings.retry_queue_url),
)
app = APIGatewayHttpResolver()


@app.post(ROUTE)
def delivery_receipt() -> Response[str]:
    event = app.current_event
    try:
        body = event.decoded_body or ""
    except ValueError:  # not base64 or not UTF-8: nothing Twilio signed
        raise SignatureRejected("undecodable") from None
    ingest.receive(
        WebhookRequest(
            url=signed_url(
                event.request_context.domain_name,
                event.raw_path,
                event.raw_query_string,
                settings.webhook_base_url,
            ),
            body=body,
            signature=event.headers.get("x-twilio-signature"),
            signature_settings=event.headers.get("x-twilio-webhooks-signature-settings"),
        )
    )
    return Response(status_code=200, content_type="text/plain", body="")


@app.exception_handler(SignatureRejected)
def forbidden(error: SignatureRejected) -> Response[str]:
    logger.warning("signature rejected", extra={"reason": error.reason})
    metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
    return Response(status_code=403, content_type="text/plain", body="forbidden")


@app.exception_handler(MalformedEvent)
def bad_request(error: MalformedEvent) -> Response[str]:
    logger.warning("bad request", extra={"reason": str(error)})
    metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
    return Response(status_code=400, content_type="text/plain", body=str(error))


@app.exception_handler(Exception)
def fault(error: Exception) -> Response[str]:
    # An AWS fault (the write failed): Twilio will not resend, so this is alarmed.
    logger.exception("ingest fault")
    metrics.add_metric(name="IngestFaults", unit=MetricUnit.Count, value=1)
    return Response(status_code=500, content_type="text/plain", body="internal error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return app.resolve(event, context)
