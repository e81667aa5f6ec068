"""Settings from the function's environment: a wrong value fails loudly, naming the variable."""

from __future__ import annotations

import pytest

from redeliver.settings import ConfigurationError, Settings

REQUIRED = {"TABLE_NAME": "t", "RETRY_QUEUE_URL": "q", "TWILIO_SECRET_ARN": "arn"}


@pytest.mark.parametrize(("raw", "enabled"), [("", False), ("false", False), ("true", True)])
def test_the_webhook_header_setting_is_off_unless_true(raw: str, enabled: bool) -> None:
    env = {**REQUIRED, "TWILIO_WEBHOOK_ENABLED": raw}
    assert Settings.from_env(env).twilio_webhook_enabled is enabled


def test_any_other_webhook_header_value_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="TWILIO_WEBHOOK_ENABLED"):
        Settings.from_env({**REQUIRED, "TWILIO_WEBHOOK_ENABLED": "yes"})


def test_the_default_retry_timeout_is_the_templates() -> None:
    # A default that disagrees with template.yaml's RetryTiming made the worker refuse to start
    # wherever RETRY_TIMEOUT_SECONDS was not set (the cold-start benchmark).
    from tools.stack import load_template

    seconds = load_template()["Mappings"]["RetryTiming"]["FunctionTimeout"]["Seconds"]
    env = {"TABLE_NAME": "t", "RETRY_QUEUE_URL": "q", "TWILIO_SECRET_ARN": "arn"}
    assert Settings.from_env(env).retry_timeout_seconds == seconds
    assert (
        Settings(table_name="t", retry_queue_url="q", twilio_secret_arn="a").retry_timeout_seconds
        == seconds
    )
