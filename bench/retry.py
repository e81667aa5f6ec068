"""Retry worker: cold start, Twilio calls per successful retry, AWS calls per retry.

- cold start: importing the handler and making its Twilio client, against Python + boto3 with
  the same two AWS clients + twilio.rest.Client with the same HTTP client, in the Lambda-like
  venv, in fresh interpreters;
- calls: one failure through ingest and the real retry handler, with moto in another process
  and the Twilio simulator on loopback, counted on the handler's own clients and at the simulator.
"""

from __future__ import annotations

import contextlib
import io
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import (
    FAKE_AWS,
    cold_start,
    table,
)
from tools.moto_server import moto_server

BASELINE_IMPORT = """
import time; t = time.perf_counter()
import boto3
from botocore.config import Config
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 3})
boto3.client("dynamodb", config=config); boto3.client("sqs", config=config)
Client("AC" + "0" * 32, "token", http_client=TwilioHttpClient(timeout=10)).conversations.v1
print(time.perf_counter() - t)
"""
HANDLER_IMPORT = """
import time; t = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/retry/app.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
from redeliver.credentials import TwilioCredentials
gateway = module.worker._twilio
gateway._credentials.get = lambda refresh=False: TwilioCredentials("AC" + "0" * 32, "token")
gateway._conversations("")  # the Twilio client, as the first record makes it
print(time.perf_counter() - t)
"""
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def calls() -> list[list[str]]:
    from redeliver import retry_queue
    from redeliver.policy import no_jitter
    from tools.apigw import http_api_event
    from tools.lambdas import FakeContext, import_function
    from tools.samples import receipt_fields
    from tools.sqs_poller import poll_once
    from tools.stack import TEST_AUTH_TOKEN, deploy
    from tools.twilio_sim import running

    retry_queue.MAX_DELAY_SECONDS = 0  # a waiting job is visible at once; the worker decides
    rows = []
    with moto_server() as endpoint, running() as sim, contextlib.redirect_stdout(io.StringIO()):
        os.environ.update({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
        stack = deploy("bench-retry")
        os.environ.update(stack.environment("IngestFunction"))
        ingest = import_function("ingest")
        os.environ.update(
            {
                **stack.environment("RetryFunction"),
                "TWILIO_CONVERSATIONS_URL": sim.url,
                "FOLLOW_UP_SECONDS": "0",  # the follow-up, counted with its retry
            }
        )
        retry = import_function("retry")
        retry.worker._policy_jitter = no_jitter  # waits exactly as the policy reads them
        timeout = float(retry.settings.retry_timeout_seconds)

        def invoke_retry(event: Any, _: Any) -> Any:  # an invocation with the deployed Timeout
            return retry.lambda_handler(event, FakeContext.for_timeout(timeout))

        aws: list[str] = []
        for client in (retry.worker._store._db, retry.worker._queue._sqs):
            client.meta.events.register(
                "before-call.*.*", lambda model, **_: aws.append(model.name)
            )
        import boto3

        sqs = boto3.client("sqs")

        def run(name: str, code: int, status: str, seconds_later: list[int]) -> None:
            # Each row counts one failure alone: what an earlier row left queued (a follow-up
            # that Twilio's answer sent round again) is not this row's.
            queue_url = stack.outputs["RetryQueueUrl"]
            while left := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                for message in left:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            conversation = sim.add_conversation()
            message = sim.add_message(conversation, created=T0)
            fields = receipt_fields(
                status,
                message=message,
                conversation=conversation,
                error_code=code,
                created="2026-11-27T10:00:00Z",
                updated="2026-11-27T10:00:05Z",
            )
            assert (
                ingest.lambda_handler(http_api_event(fields, token=TEST_AUTH_TOKEN), FakeContext())[
                    "statusCode"
                ]
                == 200
            )
            aws.clear()
            before = len(sim.requests)
            polls: list[str] = []
            for offset in seconds_later:
                retry.worker._clock = (T0 + timedelta(seconds=offset)).timestamp
                start = len(aws)
                batch = poll_once(sqs, stack.outputs["RetryQueueUrl"], invoke_retry)
                if batch.received != 1 or batch.failed:
                    raise RuntimeError(f"{name}: unexpected batch {batch}")
                polls.append(f"{', '.join(aws[start:])}")
            twilio = [method for method, _ in sim.requests[before:]]
            rows.append(
                [name, str(len(twilio)), ", ".join(twilio) or "-", str(len(aws)), " | ".join(polls)]
            )

        # The last look at a sent retry is its follow-up (recovered or not).
        # A sent retry's last invocation is its follow-up (recovered or not).
        run("sent at the first look", 30003, "undelivered", [70, 70])
        run("waited 60 s, then sent", 30003, "undelivered", [10, 70, 70])
        run("waited 300 s, one more look", 30009, "undelivered", [10, 200, 400, 400])
        run("suppressed (30005)", 30005, "failed", [70])
        del os.environ["AWS_ENDPOINT_URL"]
    return rows


def run() -> str:
    baseline, handler = cold_start(BASELINE_IMPORT, HANDLER_IMPORT)
    rows = calls()
    return "\n".join(
        [
            table(
                "Retry cold start (import + AWS and Twilio clients ready, median of 9 fresh "
                "interpreters, Lambda-like venv)",
                ["what", "seconds", "ratio"],
                [
                    [
                        "baseline: python + boto3 + 2 clients + twilio.rest.Client",
                        f"{baseline:.3f}",
                        "1.00",
                    ],
                    [
                        "retry handler (functions/retry/app.py)",
                        f"{handler:.3f}",
                        f"{handler / baseline:.2f}",
                    ],
                ],
            ),
            table(
                "Calls per retry (Twilio: at the simulator; AWS: on the handler's clients, "
                "per invocation)",
                ["retry", "Twilio", "which", "AWS", "AWS calls per invocation"],
                rows,
            ),
            "\nTwilio per successful retry: the message, its recipient (policy v2: suppression,"
            "\nquiet hours, SMS fallback), the create, and the follow-up's Receipts list; waiting"
            "\nadds AWS calls only",
        ]
    )
