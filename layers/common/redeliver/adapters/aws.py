"""boto3 clients with bounded timeouts, created once per process (per Lambda container).

Twilio gives a webhook 5 seconds: connect and read timeouts are short and retries are few, so a
slow AWS call fails inside the function's timeout instead of hanging past Twilio's.
`AWS_ENDPOINT_URL` (read by botocore itself) points every client at moto when run offline.

botocore logs at DEBUG every request's parameters (`botocore.endpoint`: "Making request for ...
with params") and every response's body (`botocore.parsers`: "Response body"), and Lambda sets the
root logger to `ApplicationLogLevel`, which the template allows to be DEBUG or TRACE: Secrets
Manager's answer, the Twilio secret itself, would be printed on every cold start (DESIGN,
invariant 7). Its loggers are held at INFO here, on import, before any client exists (as
redeliver.adapters.twilio.client holds twilio-python's and urllib3's).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# DEBUG: every request's parameters and every response's body (secrets, items, job bodies)
logging.getLogger("botocore").setLevel(logging.INFO)

FAST = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "max_attempts": 3},
    tcp_keepalive=True,
)
# IngestFunction's: one request per call, of at most connect + read timeout
# (WEBHOOK_REQUEST_SECONDS, which redeliver.usecases.ingest budgets each try at). Ingest counts
# its tries itself against the invocation's remaining time: botocore's retries, and their pauses,
# do not know the 4 s deadline, and a DynamoDB that hangs must leave time for the spill queue.
# A write normally answers in milliseconds.
WEBHOOK_CONNECT_SECONDS = 0.5
WEBHOOK_READ_SECONDS = 0.8
WEBHOOK_REQUEST_SECONDS = WEBHOOK_CONNECT_SECONDS + WEBHOOK_READ_SECONDS  # one request at worst
WEBHOOK = Config(
    connect_timeout=WEBHOOK_CONNECT_SECONDS,
    read_timeout=WEBHOOK_READ_SECONDS,
    retries={"mode": "standard", "total_max_attempts": 1},
    tcp_keepalive=True,
)


def dynamodb_client(config: Config = FAST) -> DynamoDBClient:
    return boto3.client("dynamodb", config=config)


def sqs_client(config: Config = FAST) -> SQSClient:
    return boto3.client("sqs", config=config)


def secrets_client(config: Config = FAST) -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=config)
