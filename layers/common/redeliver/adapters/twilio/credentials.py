"""The Twilio secret (Secrets Manager, JSON), read through Powertools parameters with caching.

The secret holds `account_sid` and `auth_token`, optionally `api_key_sid` + `api_key_secret` (for
REST calls), `webhook_shared_keys` ({key id: secret}, for HMAC-SHA256 signed webhooks) and
`secondary_auth_token`: Twilio's secondary auth token, accepted for signatures beside the primary,
so a rotation loses no webhook (put the new token here first, promote it in Twilio, then move it to
`auth_token`). Without it, a token promoted in Twilio before the secret is updated is refused until
a container re-reads the secret: Twilio does not resend those webhooks. It
never reaches an environment variable, a log line or an event (DESIGN invariant 7).

A Secrets Manager fault when the cached secret has expired must not turn a genuinely signed
webhook into a 500 (Twilio does not resend it), nor stop the retry worker and the reconciler. So
`CredentialSource` keeps the last credentials it read: when a read fails, it serves those
(counted `StaleCredentials`, alarmed) and asks Secrets Manager again only after `retry_after`
seconds, not on every request. A signature made with another token is still refused (403): the
stale token is still the only one accepted. This lasts at most `stale_max_seconds` after the last
good read (SecretStaleMaxHours; 0: never): past that the fault is raised, since a token that old
may have been rotated away. A container that never read the secret has nothing to fall back on,
and raises. A secret read but malformed is a deployment fault, raised as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from redeliver.observability import count, logger
from redeliver.settings import STALE_CREDENTIALS_MAX_SECONDS, ConfigurationError

RETRY_AFTER_SECONDS = 30.0  # after a failed read, Secrets Manager is not asked again for this long


@dataclass(frozen=True, slots=True, repr=False)
class TwilioCredentials:
    account_sid: str
    auth_token: str
    api_key_sid: str = ""
    api_key_secret: str = ""
    secondary_auth_token: str = ""
    webhook_shared_keys: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print a secret by accident
        return f"TwilioCredentials(account_sid={self.account_sid!r}, ...)"

    @classmethod
    def from_secret(cls, value: Any) -> TwilioCredentials:
        if not isinstance(value, Mapping):
            raise ConfigurationError("the Twilio secret must be a JSON object")
        missing = [name for name in ("account_sid", "auth_token") if not value.get(name)]
        if missing:
            raise ConfigurationError(f"the Twilio secret lacks {', '.join(missing)}")
        keys = value.get("webhook_shared_keys") or {}
        if not isinstance(keys, Mapping):
            raise ConfigurationError("webhook_shared_keys in the Twilio secret must be an object")
        return cls(
            account_sid=str(value["account_sid"]),
            auth_token=str(value["auth_token"]),
            api_key_sid=str(value.get("api_key_sid") or ""),
            api_key_secret=str(value.get("api_key_secret") or ""),
            secondary_auth_token=str(value.get("secondary_auth_token") or ""),
            webhook_shared_keys={str(k): str(v) for k, v in keys.items()},
        )


class CredentialSource:
    """Reads the secret once per `max_age` seconds; `refresh=True` skips the cache (rotation).
    A failed read serves the last good credentials for a bounded time (module docstring)."""

    def __init__(
        self,
        secret_arn: str,
        max_age: int = 300,
        stale_max_seconds: float = STALE_CREDENTIALS_MAX_SECONDS,
        *,
        retry_after: float = RETRY_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        provider: parameters.SecretsProvider | None = None,
    ) -> None:
        """`provider`: a Powertools SecretsProvider on a client with bounded timeouts (ingest's,
        inside the webhook's 4 s: botocore's defaults wait a minute a try, five tries); none:
        Powertools' default provider."""
        self._provider = provider
        self._arn = secret_arn
        self._max_age = max_age
        self._stale_max = stale_max_seconds
        self._retry_after = retry_after
        self._clock = clock
        self._good: TwilioCredentials | None = None
        self._good_at = 0.0  # when the secret was last read (or served from Powertools' cache)
        self._failed_at: float | None = None  # the last failed read, while it is unresolved

    def get(self, refresh: bool = False) -> TwilioCredentials:
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < self._retry_after:
            stale = self._stale(now)
            if stale is not None:
                return stale
        value: Any
        try:
            if self._provider is None:
                value = parameters.get_secret(
                    self._arn, transform="json", max_age=self._max_age, force_fetch=refresh
                )
            else:
                value = self._provider.get(
                    self._arn, transform="json", max_age=self._max_age, force_fetch=refresh
                )
        except GetParameterError:  # Powertools wraps what the read raised (an AWS fault)
            self._failed_at = now
            stale = self._stale(now)
            if stale is None:
                raise
            logger.warning(
                "the Twilio secret could not be read; the last good credentials are kept",
                extra={"stale_seconds": int(now - self._good_at)},
                exc_info=True,
            )
            return stale
        credentials = TwilioCredentials.from_secret(value)
        self._good, self._good_at, self._failed_at = credentials, now, None
        return credentials

    def _stale(self, now: float) -> TwilioCredentials | None:
        """The last good credentials, counted, while they are young enough to serve."""
        if self._good is None or now - self._good_at > self._stale_max:
            return None
        count("StaleCredentials")
        return self._good
