"""Logger, Metrics and Tracer: one of each per process, configured from POWERTOOLS_* variables.

Metrics go to one namespace with the `service` dimension only (POWERTOOLS_SERVICE_NAME, which the
template sets to the stack name), so alarms can name exactly these dimensions.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
