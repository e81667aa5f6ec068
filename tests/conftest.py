"""Settings every test shares: no real AWS account is ever reachable from a test."""

import os

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "redeliver",
        "POWERTOOLS_METRICS_NAMESPACE": "Redeliver",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "SAM_CLI_TELEMETRY": "0",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
