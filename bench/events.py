"""Outcome events: what EventBusName costs per decision, against the same decisions with it off.

Two stacks in one moto (another process), the Twilio simulator on loopback, the real retry
handler imported with each stack's environment: the same failures (a retry sent then recovered,
a give-up, a suppression) through each, counting the calls on the handler's own AWS clients, the
write capacity they consume, and the events the pipe (tools/pipes.py) publishes. WCU: 1 per
standard write and 2 per action of a TransactWriteItems (every item here is under 1 KB; a
ConditionCheck is counted as a write too, so the figure is an upper bound). Cost: those writes
and events at list prices (below), per million decisions; the pipe's stream polling is per
shard, not per decision, and is not in it.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import FAKE_AWS, table
from tools.moto_server import moto_server

BUS = "bench-outcomes"
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
# List prices, us-east-1, USD per million: DynamoDB on-demand write request units, EventBridge
# Pipes requests (an event of up to 64 KB is one), EventBridge custom events put on a bus.
WRITE_UNIT = 0.625
PIPES_REQUEST = 0.40
EVENTBRIDGE_EVENT = 1.00


@dataclass
class Measured:
    calls: list[str] = field(default_factory=list)
    wcu: int = 0
    events: int = 0

    @property
    def cost(self) -> float:
        """USD per million such decisions: their writes and events."""
        return self.wcu * WRITE_UNIT + self.events * (PIPES_REQUEST + EVENTBRIDGE_EVENT)


def _wcu(operation: str, params: dict[str, Any]) -> int:
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 1
    if operation == "TransactWriteItems":
        return 2 * len(params["TransactItems"])
    return 0


def measure(stack: Any, sim: Any, events_on: bool) -> dict[str, Measured]:
    import boto3

    from redeliver.adapters.sqs import retry_queue
    from redeliver.domain.policy import no_jitter
    from tools.apigw import http_api_event
    from tools.lambdas import FakeContext, import_function
    from tools.pipes import OutcomeEventsPipe
    from tools.samples import receipt_fields
    from tools.sqs_poller import poll_once
    from tools.stack import TEST_AUTH_TOKEN

    sqs = boto3.client("sqs")
    queue_url = stack.outputs["RetryQueueUrl"]
    os.environ.update(stack.environment("IngestFunction"))
    ingest = import_function("ingest")
    retry_queue.MAX_DELAY_SECONDS = 0
    os.environ.update(
        {
            **stack.environment("RetryFunction"),
            "TWILIO_CONVERSATIONS_URL": sim.url,
            "FOLLOW_UP_SECONDS": "0",
        }
    )
    retry = import_function("retry")
    retry.worker._timing.policy_jitter = no_jitter
    timeout = float(retry.settings.retry_timeout_seconds)
    seen: list[tuple[str, dict[str, Any]]] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        seen.append((model.name, params))

    for client in (retry.worker._attempts._db, retry.worker._queue._sqs):
        client.meta.events.register("before-parameter-build.*.*", note)
    table_name = stack.outputs["ReceiptsTableName"]
    pipe = (
        OutcomeEventsPipe(
            boto3.client("dynamodb"),
            boto3.client("dynamodbstreams"),
            boto3.client("events"),
            table_name,
            bus=BUS,
        )
        if events_on
        else None
    )
    if pipe is not None:
        pipe.pump()  # from here on, each decision's own

    def failure(code: int, status: str) -> str:
        conversation = sim.add_conversation()
        message = sim.add_message(conversation, created=T0)
        fields = receipt_fields(
            status,
            message=message,
            conversation=conversation,
            error_code=code,
            created=f"{T0:%Y-%m-%dT%H:%M:%SZ}",
            updated=f"{T0 + timedelta(seconds=5):%Y-%m-%dT%H:%M:%SZ}",
        )
        fields["ParticipantSid"] = sim.participant_of(conversation)
        event = http_api_event(fields, token=TEST_AUTH_TOKEN)
        assert ingest.lambda_handler(event, FakeContext())["statusCode"] == 200
        return str(conversation)

    def run(
        code: int, status: str, polls: int, between: Callable[[], None] = lambda: None
    ) -> Measured:
        failure(code, status)
        seen.clear()
        retry.worker._timing.clock = (T0 + timedelta(seconds=70)).timestamp
        for n in range(polls):
            if n:
                between()
            batch = poll_once(
                sqs,
                queue_url,
                lambda e, _: retry.lambda_handler(e, FakeContext.for_timeout(timeout)),
            )
            if batch.received != 1 or batch.failed:
                raise RuntimeError(f"{code}: unexpected batch {batch}")
        published = len(pipe.pump()) if pipe is not None else 0
        return Measured([name for name, _ in seen], sum(_wcu(n, p) for n, p in seen), published)

    def delivered() -> None:
        sim.set_receipt(sim.created[-1]["sid"], "delivered", updated=T0 + timedelta(seconds=30))

    return {
        "retry sent, then recovered (2 decisions)": run(30003, "undelivered", 2, delivered),
        "given up (30007)": run(30007, "undelivered", 1),
        "suppressed (30005: a give-up and a suppression)": run(30005, "failed", 1),
    }


def run() -> str:
    import boto3

    from tools.stack import deploy
    from tools.twilio_sim.simulator import running

    with moto_server() as endpoint, running() as sim, contextlib.redirect_stdout(io.StringIO()):
        os.environ.update({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
        try:
            boto3.client("events").create_event_bus(Name=BUS)
            off = measure(deploy("bench-events-off"), sim, events_on=False)
            on = measure(deploy("bench-events-on", {"EventBusName": BUS}), sim, events_on=True)
        finally:
            del os.environ["AWS_ENDPOINT_URL"]
    rows = []
    for what, base in off.items():
        with_events = on[what]
        became = Counter(with_events.calls) - Counter(base.calls)
        was = Counter(base.calls) - Counter(with_events.calls)
        swap = ", ".join(sorted(was.elements())) + " -> " + ", ".join(sorted(became.elements()))
        rows.append(
            [
                what,
                f"{len(with_events.calls)} vs {len(base.calls)}"
                + (f" ({swap})" if became or was else " (same)"),
                f"{with_events.wcu} vs {base.wcu} ({with_events.wcu / base.wcu:.2f}x)",
                str(with_events.events),
                f"${with_events.cost:.2f} vs ${base.cost:.2f} "
                f"({with_events.cost / base.cost:.2f}x)",
            ]
        )
    return "\n".join(
        [
            table(
                "Outcome events: EventBusName set vs empty (the baseline), the same decisions",
                ["decision", "AWS calls", "WCU", "events", "writes+events per million"],
                rows,
            ),
            "\nAWS calls: the retry handler's own, per failure. A decision we record: the same"
            "\ncalls, a write becomes a transaction carrying the event's item; a recovery (Twilio's"
            "\nrecord): one PutItem more, before the follow-up's mark. With EventBusName empty"
            "\nthe handler writes no event item and makes the baseline's calls (ingest is not"
            "\ntouched either way). Cost: per million failures like it, writes and events only.",
            f"\nPrices: DynamoDB ${WRITE_UNIT}/M WRU, Pipes ${PIPES_REQUEST}/M, EventBridge"
            f" ${EVENTBRIDGE_EVENT}/M events\n(us-east-1 list). The pipe's stream polling is"
            " per shard, not per decision, and is not counted.",
        ]
    )
