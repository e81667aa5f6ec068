"""Retry worker: cold start, Twilio calls per successful retry, AWS calls per retry.

- cold start: importing the handler and making its Twilio client, against Python + boto3 with
  the same two AWS clients + twilio.rest.Client with the same HTTP client, in the Lambda-like
  venv, in fresh interpreters;
- the first record after a cold import, against the same baseline: a failure whose retry is
  sent (the secret, Twilio's message and recipient, the claim, the create, the follow-up queued),
  with moto in another process and the Twilio simulator on loopback. What a cold start defers
  (an import only some policies need) shows here if every record pays it;
- calls: one failure through ingest and the real retry handler, with moto in another process
  and the Twilio simulator on loopback, counted on the handler's own clients and at the simulator.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import (
    COLD_REPEATS,
    FAKE_AWS,
    figures_in_fresh_interpreter,
    interleaved,
    lambda_env,
    lambda_python,
    table,
)
from tools.moto_server import moto_server

# Each snippet prints its wall-clock seconds and its own CPU seconds (time.process_time: what the
# interpreter itself did, whatever else the machine's cores were doing meanwhile).
BASELINE_IMPORT = """
import time; t, c = time.perf_counter(), time.process_time()
import boto3
from botocore.config import Config
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 3})
boto3.client("dynamodb", config=config); boto3.client("sqs", config=config)
Client("AC" + "0" * 32, "token", http_client=TwilioHttpClient(timeout=10)).conversations.v1
print(time.perf_counter() - t, time.process_time() - c)
"""
HANDLER_IMPORT = """
import time; t, c = time.perf_counter(), time.process_time()
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/retry/app.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
from redeliver.adapters.twilio.credentials import TwilioCredentials
gateway = module.worker._twilio
gateway._credentials.get = lambda refresh=False: TwilioCredentials("AC" + "0" * 32, "token")
gateway._conversations("")  # the Twilio client, as the first record makes it
print(time.perf_counter() - t, time.process_time() - c)
"""
# A cold container's first record: import the handler (timed as above, but the Twilio client is
# made by the record), receive one job as Lambda's poller would, and time the invocation.
# (Only the Lambda-like venv's packages here: tools.sqs_poller's record and tools.lambdas' context
# need the dev venv, so the snippet makes its own, with the fields the handler reads.)
FIRST_RECORD = """
import time; t, c = time.perf_counter(), time.process_time()
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/retry/app.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
imported, imported_cpu = time.perf_counter() - t, time.process_time() - c
import boto3
sqs = boto3.client("sqs")
url = module.settings.retry_queue_url
message = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"][0]
record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
          "body": message["Body"], "eventSource": "aws:sqs"}
class Context:
    function_name = "redeliver-retry"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:redeliver-retry"
    aws_request_id = "bench"
    deadline = time.monotonic() + module.settings.retry_timeout_seconds
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)
started, started_cpu = time.perf_counter(), time.process_time()
response = module.lambda_handler({"Records": [record]}, Context())
invocation, invocation_cpu = time.perf_counter() - started, time.process_time() - started_cpu
assert response == {"batchItemFailures": []}, response
sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
print(imported, imported_cpu, invocation, invocation_cpu)
"""
TARGET = 1.15  # the most the retry handler's cold start may be, to its baseline
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Cold:
    """Medians, seconds: (wall clock, CPU) of each."""

    baseline: tuple[float, float]
    handler: tuple[float, float]  # import + AWS and Twilio clients
    first_record: tuple[float, float]  # import + the first record
    record_alone: tuple[float, float]  # the first record's invocation


@dataclass
class Offline:
    endpoint: str
    sim: Any  # tools.twilio_sim's simulator
    stack: Any  # tools.stack's deployed stack
    sqs: Any
    failure: Callable[[int, str, datetime], None]  # a failure webhook through ingest


@contextlib.contextmanager
def offline() -> Iterator[Offline]:
    """moto in another process, the Twilio simulator, the template deployed, ingest imported."""
    from tools.apigw import http_api_event
    from tools.lambdas import FakeContext, import_function
    from tools.samples import receipt_fields
    from tools.stack import TEST_AUTH_TOKEN, deploy
    from tools.twilio_sim.simulator import running

    with moto_server() as endpoint, running() as sim, contextlib.redirect_stdout(io.StringIO()):
        os.environ.update({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
        stack = deploy("bench-retry")
        queue_url = stack.outputs["RetryQueueUrl"]
        os.environ.update(stack.environment("IngestFunction"))
        ingest = import_function("ingest")
        import boto3

        sqs = boto3.client("sqs")

        def failure(code: int, status: str, at: datetime) -> None:
            # Each measure counts one failure alone: what an earlier one left queued (a
            # follow-up that Twilio's answer sent round again) is not this one's.
            while left := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                for queued in left:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=queued["ReceiptHandle"])
            conversation = sim.add_conversation()
            message = sim.add_message(conversation, created=at)
            fields = receipt_fields(
                status,
                message=message,
                conversation=conversation,
                error_code=code,
                created=f"{at:%Y-%m-%dT%H:%M:%SZ}",
                updated=f"{at + timedelta(seconds=5):%Y-%m-%dT%H:%M:%SZ}",
            )
            # A receipt names its conversation's participant, as Twilio's do: the worker gives
            # a failure up as recipient_left when its participant is no longer a member.
            fields["ParticipantSid"] = sim.participant_of(conversation)
            event = http_api_event(fields, token=TEST_AUTH_TOKEN)
            assert ingest.lambda_handler(event, FakeContext())["statusCode"] == 200

        try:
            yield Offline(endpoint, sim, stack, sqs, failure)
        finally:
            del os.environ["AWS_ENDPOINT_URL"]


def cold(setup: Offline, repeats: int = COLD_REPEATS) -> Cold:
    """Interleaved: the baseline, the bare import (no AWS or Twilio call), and a fresh
    container's first record, a retry due now (its failure 150 s old, past 30003's wait)."""
    python = lambda_python()
    cold_env = lambda_env()
    first_env = lambda_env(
        {
            **setup.stack.environment("RetryFunction"),
            "TWILIO_CONVERSATIONS_URL": setup.sim.url,
            "AWS_ENDPOINT_URL": setup.endpoint,
        }
    )

    def creates() -> int:
        return sum(method == "POST" for method, _ in setup.sim.requests)

    def first_record() -> list[float]:
        setup.failure(30003, "undelivered", datetime.now(UTC) - timedelta(seconds=150))
        before = creates()
        wall, cpu, record_wall, record_cpu = figures_in_fresh_interpreter(
            FIRST_RECORD, first_env, python
        )
        if creates() != before + 1:
            raise RuntimeError("the first record did not send its retry")
        return [wall + record_wall, cpu + record_cpu, record_wall, record_cpu]

    baseline, handler, (wall, cpu, record_wall, record_cpu) = interleaved(
        [
            lambda: figures_in_fresh_interpreter(BASELINE_IMPORT, cold_env, python),
            lambda: figures_in_fresh_interpreter(HANDLER_IMPORT, cold_env, python),
            first_record,
        ],
        repeats,
    )
    return Cold(
        (baseline[0], baseline[1]),
        (handler[0], handler[1]),
        (wall, cpu),
        (record_wall, record_cpu),
    )


def calls(setup: Offline) -> list[list[str]]:
    from redeliver.adapters.sqs import retry_queue
    from redeliver.domain.policy import no_jitter
    from tools.lambdas import FakeContext, import_function
    from tools.sqs_poller import poll_once

    sim, sqs, queue_url = setup.sim, setup.sqs, setup.stack.outputs["RetryQueueUrl"]
    retry_queue.MAX_DELAY_SECONDS = 0  # a waiting job is visible at once; the worker decides
    os.environ.update(
        {
            **setup.stack.environment("RetryFunction"),
            "TWILIO_CONVERSATIONS_URL": sim.url,
            "FOLLOW_UP_SECONDS": "0",  # the follow-up, counted with its retry
        }
    )
    retry = import_function("retry")
    retry.worker._timing.policy_jitter = no_jitter  # waits exactly as the policy reads them
    timeout = float(retry.settings.retry_timeout_seconds)

    def invoke_retry(event: Any, _: Any) -> Any:  # an invocation with the deployed Timeout
        return retry.lambda_handler(event, FakeContext.for_timeout(timeout))

    aws: list[str] = []
    for client in (retry.worker._attempts._db, retry.worker._queue._sqs):
        client.meta.events.register("before-call.*.*", lambda model, **_: aws.append(model.name))
    rows = []

    def run(name: str, code: int, status: str, seconds_later: list[int]) -> None:
        setup.failure(code, status, T0)
        aws.clear()
        before = len(sim.requests)
        polls: list[str] = []
        for offset in seconds_later:
            retry.worker._timing.clock = (T0 + timedelta(seconds=offset)).timestamp
            start = len(aws)
            batch = poll_once(sqs, queue_url, invoke_retry)
            if batch.received != 1 or batch.failed:
                raise RuntimeError(f"{name}: unexpected batch {batch}")
            polls.append(f"{', '.join(aws[start:])}")
        twilio = [method for method, _ in sim.requests[before:]]
        rows.append(
            [name, str(len(twilio)), ", ".join(twilio) or "-", str(len(aws)), " | ".join(polls)]
        )

    # A sent retry's last invocation is its follow-up (recovered or not).
    run("sent at the first look", 30003, "undelivered", [70, 70])
    run("waited 60 s, then sent", 30003, "undelivered", [10, 70, 70])
    run("waited 300 s, one more look", 30009, "undelivered", [10, 200, 400, 400])
    run("suppressed (30005)", 30005, "failed", [70])
    return rows


def cold_table(cold: Cold) -> str:
    (base_wall, base_cpu), target = cold.baseline, f"(target <= {TARGET:.2f})"

    def row(what: str, figures: tuple[float, float], note: str = "") -> list[str]:
        wall, cpu = figures
        return [
            what,
            f"{wall:.3f}",
            f"{wall / base_wall:.2f}  {note}".rstrip(),
            f"{cpu:.3f}",
            f"{cpu / base_cpu:.2f}  {note}".rstrip(),
        ]

    record_wall, record_cpu = cold.record_alone
    return table(
        f"Retry cold start (median of {COLD_REPEATS} fresh interpreters each, interleaved, "
        "Lambda-like venv; CPU: the interpreter's own, steady when other work shares the cores)",
        ["what", "wall s", "ratio", "CPU s", "ratio"],
        [
            row("baseline: python + boto3 + 2 clients + twilio.rest.Client", cold.baseline),
            row("retry handler: import + AWS and Twilio clients", cold.handler, target),
            row(
                f"retry handler: import, then its first record ({record_wall * 1e3:.0f} ms, "
                f"{record_cpu * 1e3:.0f} ms CPU)",
                cold.first_record,
            ),
        ],
    )


def run() -> str:
    with offline() as setup:
        cold_figures = cold(setup)
        rows = calls(setup)
    return "\n".join(
        [
            cold_table(cold_figures),
            table(
                "Calls per retry (Twilio: at the simulator; AWS: on the handler's clients, "
                "per invocation)",
                ["retry", "Twilio", "which", "AWS", "AWS calls per invocation"],
                rows,
            ),
            "\nTwilio per successful retry: the message, its recipient (policy v2: suppression,"
            "\nquiet hours, SMS fallback), the create, and the follow-up's Receipts list; waiting"
            "\nadds AWS calls only.",
            "\nA cold container's first record is a retry sent (30003, its wait over): the secret,"
            "\nthe message and its recipient, the claim, the create, the follow-up queued, with"
            "\nmoto and the Twilio simulator answering from another process; what the import"
            "\nleaves to first use (an import only some policies need) shows here if every"
            "\nrecord pays it.",
        ]
    )
