"""Logger and Metrics: one of each per process, configured from POWERTOOLS_* variables.

Metrics go to one namespace (POWERTOOLS_METRICS_NAMESPACE) with the `service` dimension
(POWERTOOLS_SERVICE_NAME, the stack name). A few series add one more dimension from a small,
fixed set of values (`count_by`), so that alarms and the dashboard can name every series exactly:
template tests compare them with what the handlers print.

No Powertools Tracer: importing the X-Ray SDK costs about 0.3 s of every cold start (`make bench`),
a lot inside Twilio's 5 s webhook timeout. `Tracing: Active` in the template still records each
invocation in X-Ray.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
metrics = Metrics()

KNOWN_STATUSES = ("sent", "delivered", "read", "undelivered", "failed")
ERROR_CLASSES = {21: "21xxx", 30: "30xxx", 63: "63xxx"}  # API/opt-out, carrier, WhatsApp


def count(name: str, value: float = 1) -> None:
    """A count with the service dimension only."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_by(name: str, dimension: str, value: str) -> None:
    """A count with the service dimension and one more, in its own EMF record."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=value)


def status_value(status: str) -> str:
    return status if status in KNOWN_STATUSES else "other"


def error_class(code: int | None) -> str:
    if code is None:
        return "none"
    return ERROR_CLASSES.get(code // 1000, "other")


def reason_value(reason: str) -> str:
    """Give-up reasons as a metric dimension: Twilio's refusal codes folded into one value."""
    return "twilio_rejected" if reason.startswith("twilio_rejected") else reason
