"""CredentialSource when Secrets Manager fails: the last good credentials, for a bounded time,
and Secrets Manager asked again only now and then (redeliver.adapters.twilio.credentials)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from redeliver.adapters.twilio.credentials import RETRY_AFTER_SECONDS, CredentialSource
from redeliver.settings import ConfigurationError

SECRET = {"account_sid": "AC" + "0" * 32, "auth_token": "first"}
ROTATED = {**SECRET, "auth_token": "second"}
FIRST, SECOND = SECRET["auth_token"], ROTATED["auth_token"]


class Provider:
    """A Powertools SecretsProvider's `get`, answering what it is told to."""

    def __init__(self) -> None:
        self.answers: list[Any] = [SECRET]
        self.calls = 0

    def get(self, name: str, **_: Any) -> Any:
        self.calls += 1
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def source(provider: Provider, now: list[float], stale_max: float = 3600) -> CredentialSource:
    return CredentialSource(
        "arn",
        300,
        stale_max,
        clock=lambda: now[0],
        provider=provider,  # type: ignore[arg-type]
    )


def test_a_failed_read_serves_the_last_good_credentials_and_asks_again_only_after_a_while() -> None:
    provider, now = Provider(), [0.0]
    credentials = source(provider, now)
    assert credentials.get().auth_token == FIRST
    provider.answers = [GetParameterError("no connection")]
    now[0] = 400.0
    assert credentials.get().auth_token == FIRST
    assert credentials.get(refresh=True).auth_token == FIRST  # a forgery's re-read: no call
    assert provider.calls == 2
    now[0] += RETRY_AFTER_SECONDS + 1
    assert credentials.get().auth_token == FIRST
    assert provider.calls == 3  # asked again, failed again
    provider.answers = [ROTATED]
    now[0] += RETRY_AFTER_SECONDS + 1
    assert credentials.get().auth_token == SECOND


def test_stale_credentials_are_bounded_and_a_cold_source_has_none() -> None:
    provider, now = Provider(), [0.0]
    credentials = source(provider, now, stale_max=1000)
    credentials.get()
    provider.answers = [GetParameterError("no connection")]
    now[0] = 999.0
    credentials.get()
    now[0] = 1001.0
    with pytest.raises(GetParameterError):
        credentials.get()
    with pytest.raises(GetParameterError):
        source(provider, [0.0]).get()  # never read: nothing to fall back on


def test_a_malformed_secret_is_a_deployment_fault_not_an_outage() -> None:
    provider, now = Provider(), [0.0]
    credentials = source(provider, now)
    credentials.get()
    provider.answers = [{"account_sid": "AC" + "0" * 32}]
    now[0] = 400.0
    with pytest.raises(ConfigurationError):
        credentials.get()
