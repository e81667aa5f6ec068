"""The Twilio secret (Secrets Manager, JSON), read through Powertools parameters with caching.

The secret holds `account_sid` and `auth_token`, optionally `api_key_sid` + `api_key_secret` (for
REST calls), `webhook_shared_keys` ({key id: secret}, for HMAC-SHA256 signed webhooks) and
`secondary_auth_token`: Twilio's secondary auth token, accepted for signatures beside the primary,
so a rotation loses no webhook (put the new token here first, promote it in Twilio, then move it to
`auth_token`). Without it, a token promoted in Twilio before the secret is updated is refused until
a container re-reads the secret: Twilio does not resend those webhooks. It
never reaches an environment variable, a log line or an event (DESIGN invariant 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters

from redeliver.settings import ConfigurationError


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
    """Reads the secret once per `max_age` seconds; `refresh=True` skips the cache (rotation)."""

    def __init__(self, secret_arn: str, max_age: int = 300) -> None:
        self._arn = secret_arn
        self._max_age = max_age

    def get(self, refresh: bool = False) -> TwilioCredentials:
        value = parameters.get_secret(
            self._arn, transform="json", max_age=self._max_age, force_fetch=refresh
        )
        return TwilioCredentials.from_secret(value)
