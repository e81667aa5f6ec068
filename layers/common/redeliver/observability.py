"""Logger and Metrics: one of each per process, configured from POWERTOOLS_* variables.

Metrics go to one namespace with the `service` dimension only (POWERTOOLS_SERVICE_NAME, which the
template sets to the stack name), so alarms can name exactly these dimensions.

No Powertools Tracer: importing the X-Ray SDK costs about 0.3 s of every cold start (`make bench`),
a lot inside Twilio's 5 s webhook timeout. `Tracing: Active` in the template still records each
invocation in X-Ray.
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
