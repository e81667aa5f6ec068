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


import pytest

from tests.docs import aws_calls


@pytest.fixture(scope="session", autouse=True)
def _record_the_clis_aws_calls() -> object:
    """The AWS calls the `redeliver` command makes, for docs/operator-policy.json's test."""
    stop = aws_calls.install()
    yield
    stop()
