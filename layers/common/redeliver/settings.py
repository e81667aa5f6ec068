"""The deployment's settings, read once from the function's environment (set by template.yaml)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

CLAIM_MARGIN_SECONDS = 20
RETRY_TIMEOUT_SECONDS = 120  # template.yaml's RetryTiming, when the environment does not say
# template.yaml's ReceiptRetentionDays default (tests/cli holds them equal): the receipts' TTL when
# the environment does not say, and what `redeliver policy check` holds max_age_seconds to
RECEIPT_RETENTION_DAYS = 30
STALE_CREDENTIALS_MAX_SECONDS = 12 * 3600  # template.yaml's SecretStaleMaxHours default


class ConfigurationError(RuntimeError):
    """A required setting is missing or wrong: the deployment is broken, not the request."""


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str
    retry_queue_url: str
    twilio_secret_arn: str
    webhook_base_url: str = ""
    receipt_ttl_days: int = RECEIPT_RETENTION_DAYS
    secret_max_age_seconds: int = 300
    # how long the last good Twilio credentials are kept while Secrets Manager fails (0: never)
    secret_stale_max_seconds: int = STALE_CREDENTIALS_MAX_SECONDS
    sweep_grace_seconds: int = 120
    retry_policy: str = ""  # the RetryPolicy document (JSON); empty: the built-in default
    twilio_conversations_url: str = ""  # empty: Twilio; the simulator's URL offline
    twilio_timeout_seconds: int = 10
    twilio_webhook_enabled: bool = False  # X-Twilio-Webhook-Enabled on creates (template: off)
    retry_timeout_seconds: int = RETRY_TIMEOUT_SECONDS  # the retry function's Timeout
    follow_up_seconds: int = 900  # when a sent retry's receipts are looked at
    reconcile_after_minutes: int = 30  # 0: no reconciliation, and no index write for it
    reconcile_max_lookups: int = 3  # lookups with nothing new before a receipt is left alone
    spill_queue_url: str = ""  # empty: a failed write is a 5xx (no spill)
    # outcome events (EventBusName set): each decision's event item written with its record
    outcome_events: bool = False
    # TrackMessages: ingest records each API/SDK message's onMessageAdded (the template sets it
    # only where reconciliation runs: nothing else would read the record)
    track_messages: bool = False

    @property
    def claim_stale_seconds(self) -> int:
        """A claim older than this belongs to a dead worker: no run of the retry function lasts
        longer than its timeout, and a create it sent just before dying has had a Twilio timeout
        (and a margin) to land, so the marker search then sees it."""
        return self.retry_timeout_seconds + self.twilio_timeout_seconds + CLAIM_MARGIN_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def required(name: str) -> str:
            value = env.get(name, "")
            if not value:
                raise ConfigurationError(f"environment variable {name} is not set")
            return value

        def integer(name: str, default: int) -> int:
            raw = env.get(name, "")
            try:
                return int(raw) if raw else default
            except ValueError:
                raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None

        def boolean(name: str) -> bool:
            raw = env.get(name, "")
            if raw not in ("", "true", "false"):
                raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
            return raw == "true"

        return cls(
            table_name=required("TABLE_NAME"),
            retry_queue_url=required("RETRY_QUEUE_URL"),
            twilio_secret_arn=required("TWILIO_SECRET_ARN"),
            webhook_base_url=env.get("WEBHOOK_BASE_URL", "").rstrip("/"),
            receipt_ttl_days=integer("RECEIPT_TTL_DAYS", RECEIPT_RETENTION_DAYS),
            secret_max_age_seconds=integer("SECRET_MAX_AGE_SECONDS", 300),
            secret_stale_max_seconds=3600
            * integer("STALE_CREDENTIALS_MAX_HOURS", STALE_CREDENTIALS_MAX_SECONDS // 3600),
            sweep_grace_seconds=integer("SWEEP_GRACE_SECONDS", 120),
            retry_policy=env.get("RETRY_POLICY", ""),
            twilio_conversations_url=env.get("TWILIO_CONVERSATIONS_URL", ""),
            twilio_timeout_seconds=integer("TWILIO_TIMEOUT_SECONDS", 10),
            twilio_webhook_enabled=boolean("TWILIO_WEBHOOK_ENABLED"),
            retry_timeout_seconds=integer("RETRY_TIMEOUT_SECONDS", RETRY_TIMEOUT_SECONDS),
            follow_up_seconds=integer("FOLLOW_UP_SECONDS", 900),
            reconcile_after_minutes=integer("RECONCILE_AFTER_MINUTES", 30),
            reconcile_max_lookups=integer("RECONCILE_MAX_LOOKUPS", 3),
            spill_queue_url=env.get("SPILL_QUEUE_URL", ""),
            outcome_events=boolean("OUTCOME_EVENTS"),
            track_messages=boolean("TRACK_MESSAGES"),
        )
