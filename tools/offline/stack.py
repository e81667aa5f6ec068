"""The whole stack, up and down: moto, the template deployed into it (tools.stack), the Twilio
simulator, the runtime and its event sources. `running` yields an `Offline` and stops it all when
the block ends."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tools.moto_server import FAKE_CREDENTIALS, moto_server
from tools.offline.policy import OFFLINE_POLICY
from tools.offline.runtime import Runtime
from tools.offline.sources import LocalApi, Pollers, Scheduler
from tools.offline.tuning import Tuning, schedule_seconds, sweep_schedule
from tools.pipes import OutcomeEventsPipe
from tools.stack import DeployedStack, create_twilio_secret, deploy, load_template
from tools.twilio_sim.simulator import TwilioSimulator
from tools.webhook_emitter import WebhookEmitter

STACK = "redeliver-local"
EVENT_BUS = "redeliver-outcomes"  # outcome events on (EventBusName), on a bus of their own

FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_TRACE_DISABLED": "1",
}


@dataclass
class Offline:
    stack: DeployedStack
    runtime: Runtime
    api: LocalApi
    pollers: Pollers
    sim: TwilioSimulator
    token: str
    endpoint: str
    workdir: Path
    tuning: Tuning = field(default_factory=Tuning)
    sweeper: Scheduler | None = None
    emitter: WebhookEmitter | None = None
    reconciler: Scheduler | None = None
    # message SID -> its non-chat recipients when Twilio stored it (the group-send check)
    recipients_at_create: dict[str, int] = field(default_factory=dict)
    pipe: OutcomeEventsPipe | None = None  # OutcomeEventsPipe, emulated (tools/pipes.py)

    def note_recipients(self, message: dict[str, Any], _channel: str, recipients: int) -> None:
        self.recipients_at_create[str(message["sid"])] = recipients


@contextlib.contextmanager
def running(port: int, workdir: Path, seed: int, tuning: Tuning | None = None) -> Iterator[Offline]:
    """The whole stack, up until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        endpoint = cleanup.enter_context(moto_server(workdir / "moto-slow.log"))
        cleanup.enter_context(_environment({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}))
        offline = _start(endpoint, port, workdir, seed, tuning or Tuning())
        cleanup.callback(offline.sim.stop)
        cleanup.callback(offline.runtime.stop)
        cleanup.callback(offline.api.stop)
        cleanup.callback(offline.pollers.stop)
        cleanup.callback(lambda: offline.sweeper.stop() if offline.sweeper else None)
        cleanup.callback(lambda: offline.reconciler.stop() if offline.reconciler else None)
        cleanup.callback(lambda: offline.emitter.stop() if offline.emitter else None)
        yield offline


def _start(endpoint: str, port: int, workdir: Path, seed: int, tuning: Tuning) -> Offline:
    sim = TwilioSimulator(seed=seed).start()
    token = secrets.token_hex(16)
    boto3.client("events").create_event_bus(Name=EVENT_BUS)
    with contextlib.redirect_stderr(io.StringIO()):  # moto's warnings on skipped resources
        stack = deploy(
            STACK,
            {
                "TwilioSecretArn": create_twilio_secret(
                    f"{STACK}/twilio", auth_token=token, account_sid=sim.account_sid
                ),
                "RetryPolicy": json.dumps(OFFLINE_POLICY),
                "TwilioConversationsUrl": sim.url,
                "RetryFollowUpSeconds": "2",
                # 1 minute, the least that is on; the function's clock runs ahead (Tuning)
                "ReconcileAfterMinutes": "0" if tuning.reconcile_after is None else "1",
                "ReconcileEveryMinutes": "1",
                "EventBusName": EVENT_BUS,
                "TrackMessages": "true" if tuning.tracking else "false",
            },
        )
    subscribe(sim, sim.chat_service_sid, tuning.tracking)
    if tuning.visibility_timeout is not None:
        boto3.client("sqs").set_queue_attributes(
            QueueUrl=stack.outputs["RetryQueueUrl"],
            Attributes={"VisibilityTimeout": str(tuning.visibility_timeout)},
        )
    (workdir / "moto-slow.log").unlink(missing_ok=True)  # the deploy's slow requests are no news
    log = workdir / "lambda.log"
    log.unlink(missing_ok=True)  # this run's lines only: the report reads reasons from it
    runtime = Runtime(
        stack,
        log,
        environment=tuning.environment,
        kills=tuning.kills,
        timeouts=tuning.timeouts,
        clocks=tuning.clocks,
    )
    api = LocalApi(runtime, port).start()
    pollers = Pollers(runtime, stack).start()
    every = tuning.sweep_every or schedule_seconds(sweep_schedule(load_template()))
    sweeper = Scheduler(runtime, "SweepFunction", every).start() if every else None
    reconciler = (
        Scheduler(runtime, "ReconcileFunction", tuning.reconcile_every).start()
        if tuning.reconcile_after is not None
        else None
    )
    offline = Offline(
        stack,
        runtime,
        api,
        pollers,
        sim,
        token,
        endpoint,
        workdir,
        tuning,
        sweeper,
        reconciler=reconciler,
    )
    sim.listeners.append(offline.note_recipients)
    offline.pipe = OutcomeEventsPipe(
        boto3.client("dynamodb"),
        boto3.client("dynamodbstreams"),
        boto3.client("events"),
        stack.outputs["ReceiptsTableName"],
        bus=EVENT_BUS,
    )
    return offline


def subscribe(sim: TwilioSimulator, service: str, track_messages: bool) -> None:
    """The service's post-event webhook as `redeliver configure-webhook` leaves it: its filters
    say which webhooks the simulator's emitter sends (onMessageAdded only with TrackMessages)."""
    sim.service_webhooks[service] = {
        "account_sid": sim.account_sid,
        "chat_service_sid": service,
        "pre_webhook_url": None,
        "post_webhook_url": None,  # the emitter posts to the local API
        "filters": ["onDeliveryUpdated"] + (["onMessageAdded"] if track_messages else []),
        "method": "POST",
    }


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
