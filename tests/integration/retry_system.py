"""The whole retry path in one process: ingest → table/queue → retry → Twilio simulator.

The template is deployed into moto; ingest and retry are the real handlers with their deployed
environment; the retry function's twilio-python client talks HTTP to tools.twilio_sim. Time is
the worker's clock, moved by the test; SQS delays are cut to zero so a waiting job is visible at
once (the worker, not SQS, decides whether it is due — see RetryWorker.process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from redeliver.adapters.sqs import retry_queue
from redeliver.domain.policy import no_jitter
from tests.integration.resources import Resources
from tests.lambdas import invoke, load_function
from tools.apigw import http_api_event
from tools.samples import receipt_fields
from tools.sqs_poller import Batch, lambda_record, poll_once
from tools.stack import TEST_AUTH_TOKEN, DeployedStack
from tools.twilio_sim.simulator import TwilioSimulator

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


class Crash(BaseException):
    """A Lambda runtime dying mid-record (timeout, OOM): nothing after it runs."""


def after(original: Any) -> Any:
    """Run the step, then die: its effect happened, nothing after it did."""

    def dying(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise Crash

    return dying


def before(_: Any) -> Any:
    """Die instead of the step: nothing of it happened."""

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    return dying


def marker(message: dict[str, Any]) -> dict[str, Any]:
    """A created message's `redeliver` marker."""
    own: dict[str, Any] = json.loads(message["attributes"])["redeliver"]
    return own


class RetrySystem(Resources):
    def __init__(
        self,
        stack: DeployedStack,
        sim: TwilioSimulator,
        monkeypatch: pytest.MonkeyPatch,
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(stack)
        self.sim = sim
        self.monkeypatch = monkeypatch
        monkeypatch.setattr(retry_queue, "MAX_DELAY_SECONDS", 0)
        self.ingest = load_function("ingest", stack.environment("IngestFunction"), monkeypatch)
        self.retry = self.load_retry(policy)
        self.now = T0 + timedelta(seconds=70)
        self._in_flight: dict[str, str] = {}

    def load_retry(self, policy: Mapping[str, Any] | None = None, **environment: str) -> ModuleType:
        env = {
            **self.stack.environment("RetryFunction"),
            "TWILIO_CONVERSATIONS_URL": self.sim.url,
            "TWILIO_TIMEOUT_SECONDS": "2",
            "FOLLOW_UP_SECONDS": "0",  # follow-ups due at once: the tests move the clock
            **environment,
        }
        if policy is not None:
            env["RETRY_POLICY"] = json.dumps(policy)
        module = load_function("retry", env, self.monkeypatch)
        module.worker._timing.clock = lambda: self.now.timestamp()  # noqa: PLW0108 - reads self.now late
        # Waits exactly as the policy reads, so a test can name them; jitter has its own tests
        # (tests/unit/test_policy_v2.py; test_retry_v2.py puts it back).
        module.worker._timing.policy_jitter = no_jitter
        self.retry = module
        return module

    def count_aws(self) -> list[str]:
        """The AWS operations the retry function's own clients call from now on, in order."""
        calls: list[str] = []
        worker = self.retry.worker
        for client in {worker._attempts._db, worker._suppressions._db, worker._queue._sqs}:
            client.meta.events.register(
                "before-call.*.*", lambda model, **_: calls.append(model.name)
            )
        return calls

    # -- Twilio's side ---------------------------------------------------------------------------

    def message(
        self,
        recipients: int = 1,
        service: str | None = None,
        *,
        channel: str = "sms",
        address: str | None = None,
        **options: Any,
    ) -> tuple[str, str]:
        """A conversation (in the default Conversation Service unless `service`) and a message;
        its first recipient on `channel` at `address` (default: a +1555 number)."""
        conversation = self.sim.add_conversation(
            recipients=recipients, service=service, channel=channel, address=address
        )
        return conversation, self.sim.add_message(conversation, created=T0, **options)

    def webhook(
        self,
        conversation: str,
        message: str,
        status: str,
        code: int | None = None,
        *,
        after: int = 5,
        receipt: object = "r1",
    ) -> int:
        fields = receipt_fields(
            status,
            message=message,
            conversation=conversation,
            receipt=f"{message}-{receipt}",
            error_code=code,
            created=_iso(T0),
            updated=_iso(T0 + timedelta(seconds=after)),
        )
        if conversation in self.sim.conversations:  # its receipts name its own service
            fields["ChatServiceSid"] = self.sim.service_of(conversation)
            if self.sim.conversations[conversation].participants:  # and its first recipient
                fields["ParticipantSid"] = self.sim.participant_of(conversation)
        response = invoke(self.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
        status_code: int = response["statusCode"]
        return status_code

    def fail(
        self,
        conversation: str,
        message: str,
        code: int | None = 30003,
        after: int = 5,
        status: str = "undelivered",
    ) -> None:
        assert self.webhook(conversation, message, status, code, after=after) == 200

    # -- the queue, as Lambda polls it -----------------------------------------------------------

    def poll(self, crash: bool = False) -> Batch:
        batch = poll_once(
            self.sqs,
            self.queue_url,
            self.retry.lambda_handler,
            batch_size=5,
            crash_types=(Crash,) if crash else (),
        )
        self._in_flight.update({i: batch.handles[i] for i in batch.failed})
        return batch

    def drain(self, rounds: int = 20) -> list[Batch]:
        """Poll until the queue is empty (failed records are made visible again at once)."""
        batches = []
        for _ in range(rounds):
            batch = self.poll()
            if not batch.received:
                return batches
            batches.append(batch)
            self.redeliver_now()
        raise AssertionError("the retry queue did not drain")

    def redeliver_now(self) -> None:
        """Make the records that failed visible again now, as their visibility timeout would."""
        for handle in self._in_flight.values():
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        self._in_flight.clear()

    def queued(self, url: str | None = None) -> list[dict[str, Any]]:
        """A peek: the jobs stay visible (the worker's clock, not SQS, decides when they run)."""
        answer = self.sqs.receive_message(
            QueueUrl=url or self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]

    def receive_event(self, count: int) -> dict[str, Any]:
        """Receive `count` jobs as Lambda would, and the SQS event it would invoke with."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=count, MessageSystemAttributeNames=["All"]
        )
        messages = answer["Messages"]
        assert len(messages) == count
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        queue_arn = arn["Attributes"]["QueueArn"]
        return {"Records": [lambda_record(m, queue_arn, "us-east-1") for m in messages]}

    def visible_in(self, message_id: str) -> float:
        """Seconds until a received job is visible again, as moto's SQS holds it.

        AWS has no API that reads a message's visibility; moto keeps it as a wall-clock deadline
        (`visible_at`, epoch ms) that ChangeMessageVisibility sets from now, as AWS does.
        """
        queue_name = self.queue_url.rsplit("/", 1)[1]
        queue = sqs_backends[DEFAULT_ACCOUNT_ID][self.sqs.meta.region_name].queues[queue_name]
        [message] = [m for m in queue._messages if m.id == message_id]
        return float(message.visible_at) / 1000 - time.time()

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # -- what happened ---------------------------------------------------------------------------

    def created(self, conversation: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.sim.created
            if conversation is None or m["conversation_sid"] == conversation
        ]

    def attempts(self, root: str) -> dict[int, dict[str, Any]]:
        items = self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :a)",
            ExpressionAttributeValues={":pk": {"S": f"MSG#{root}"}, ":a": {"S": "ATTEMPT#"}},
            ConsistentRead=True,
        )["Items"]
        return {
            int(i["sk"]["S"].removeprefix("ATTEMPT#")): {
                k: next(iter(v.values())) for k, v in i.items()
            }
            for i in items
        }

    def item(self, message: str, sk: str) -> dict[str, Any] | None:
        answer = self.dynamodb.get_item(
            TableName=self.table,
            ConsistentRead=True,
            Key={"pk": {"S": f"MSG#{message}"}, "sk": {"S": sk}},
        )
        item = answer.get("Item")
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
