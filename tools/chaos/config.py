"""What a chaos run asks for (`ChaosConfig`, with the Twilio faults' shares, `TwilioFaults`),
where it departs from the template to get there in minutes (`tuning`), and what it injected
(`Chaos`, for the report)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tools.chaos.kills import ChaosKills
from tools.offline.tuning import KillPoint, Tuning
from tools.webhook_emitter import Mix

# Time compressed, as OFFLINE_POLICY's delays are (each is printed in the report's notes):
TWILIO_TIMEOUT_SECONDS = 2  # the retry worker's Twilio read timeout (template: 10)
# RetryFunction's Timeout (template: 60), enforced, and its RETRY_TIMEOUT_SECONDS with it: the
# stale-claim age (timeout + Twilio timeout + margin) that an ambiguous create waits out follows.
# It must leave room for a record (redeliver.usecases.retry.outcomes.record_budget_seconds: 15 s
# at a 2 s Twilio timeout), or the worker starts none.
RETRY_TIMEOUT_SECONDS = 30
VISIBILITY_TIMEOUT = 60  # a killed retry batch is back after this: 2x the Timeout (template: 6x)
# A stored failure with no job is re-queued after this (template: 120). Longer than a job waits in
# the queue's backlog under these faults, or the sweeper re-queues jobs that were never lost.
SWEEP_GRACE_SECONDS = 60
# A receipt at `sent` is looked up after this (template: ReconcileAfterMinutes=30): longer than a
# webhook waits in the emitter's queue behind a slow ingest, so the reconciler asks about lost
# webhooks, not late ones.
RECONCILE_AFTER_SECONDS = 10


@dataclass(frozen=True)
class TwilioFaults:
    """The shares of message creates that fail, by kind: tools.twilio_sim.faults.FaultRates."""

    throttled: float = 0.05  # 429 / 20429: nothing stored
    error_before: float = 0.03  # 503 before the store: nothing stored
    error_after: float = 0.03  # 502 after the store: stored, the client sees a 5xx
    timeout_after: float = 0.02  # stored, the answer withheld past the client's timeout
    refused: float = 0.02  # connection refused: nothing stored

    @property
    def any(self) -> bool:
        return any(dataclasses.astuple(self))


@dataclass
class ChaosConfig:
    messages: int = 1000
    seed: int = 8
    rate: float = 50.0  # the app's messages per second
    timeout: float = 540.0  # seconds without progress before the run stops unsettled
    mix: Mix = field(
        default_factory=lambda: Mix(
            failure_rate=0.35,
            retry_success=0.6,
            duplicate_rate=0.2,
            reorder_rate=0.2,
            lose_rate=0.03,
        )
    )
    faults: TwilioFaults = field(default_factory=TwilioFaults)
    kill_ingest: int = 4
    kill_retry: int = 4
    forged: int = 30
    second_service: float = 0.5  # share of conversations in the second Conversation Service
    sweep_every: float = 5.0
    reconcile_every: float = 5.0
    kill_points: dict[str, tuple[KillPoint, ...]] | None = None  # default: ChaosKills.POINTS
    track_messages: bool = True  # TrackMessages=true (--no-track-messages: off)


def tuning(config: ChaosConfig) -> Tuning:
    messages = max(config.messages, 1)
    return Tuning(
        environment={
            "RetryFunction": {
                "TWILIO_TIMEOUT_SECONDS": str(TWILIO_TIMEOUT_SECONDS),
                "RETRY_TIMEOUT_SECONDS": str(RETRY_TIMEOUT_SECONDS),
            },
            "SweepFunction": {"SWEEP_GRACE_SECONDS": str(SWEEP_GRACE_SECONDS)},
        },
        visibility_timeout=VISIBILITY_TIMEOUT,
        timeouts={"RetryFunction": RETRY_TIMEOUT_SECONDS},
        sweep_every=config.sweep_every,
        reconcile_after=RECONCILE_AFTER_SECONDS,
        reconcile_every=config.reconcile_every,
        track_messages=config.track_messages,
        kills=ChaosKills(
            config.seed,
            {
                "IngestFunction": (config.kill_ingest, max(10, messages * 2)),
                "RetryFunction": (config.kill_retry, max(10, messages // 5)),
            },
            config.kill_points,
        ),
    )


@dataclass
class Chaos:
    """What the run injected, for the report."""

    config: ChaosConfig
    missing: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)  # the forged webhooks' message SIDs
