"""What the libraries log for us at the application log levels the template allows.

Lambda's runtime sets the *root* logger to `ApplicationLogLevel` (awslambdaric's
`bootstrap._setup_logging`: `if log_level in logging._nameToLevel: logger.setLevel(log_level)`,
TRACE read as DEBUG by `_get_log_level_from_env_var`), and template.yaml allows TRACE and DEBUG.
Every library logger without a level of its own then reaches CloudWatch Logs at that level, through
the runtime's root handler: these tests catch what reaches the root, as that handler would.

botocore logs at DEBUG every request's parameters (`botocore/endpoint.py` 114-118, "Making request
for %s with params: %s") and every response's body (`botocore/parsers.py` 255-256, "Response
body:\\n%r"): Secrets Manager's GetSecretValue answer is the Twilio secret itself (DESIGN,
invariant 7: the auth token is never in logs).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from tests.integration.retry_system import RetrySystem
from tests.lambdas import invoke, load_function
from tools.apigw import http_api_event
from tools.samples import receipt_fields
from tools.stack import TEST_AUTH_TOKEN, DeployedStack


class RootLog(logging.Handler):
    """Every record that reaches the root logger, as Lambda's handler there would print it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Each record's message (its arguments applied) and any exception's traceback."""
        lines = []
        for record in self.records:
            lines.append(f"{record.name}: {record.getMessage()}")
            if record.exc_info and record.exc_info[1] is not None:
                lines.extend(traceback.format_exception(record.exc_info[1]))
        return "\n".join(lines)


@pytest.fixture
def debug_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[RootLog]:
    """ApplicationLogLevel DEBUG, as the runtime applies it: to the root logger (and the
    environment the Powertools Logger reads)."""
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
    root = logging.getLogger()
    caught, level = RootLog(), root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(caught)
    yield caught
    root.removeHandler(caught)
    root.setLevel(level)


def test_ingest_at_debug_keeps_the_auth_token_out_of_the_logs(
    debug_root: RootLog, stack: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold ingest reads the Twilio secret; botocore must not print its answer."""
    debug_root.records.clear()  # the stack's deployment: the test's own doing
    ingest = load_function("ingest", stack.environment("IngestFunction"), monkeypatch)
    fields = receipt_fields("undelivered", error_code=30003)
    response = invoke(ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
    assert response["statusCode"] == 200  # verified: the secret was read, in this invocation
    assert debug_root.records  # DEBUG records did reach the root
    assert TEST_AUTH_TOKEN not in debug_root.text()


def test_retry_at_debug_keeps_the_auth_token_and_the_recipient_out_of_the_logs(
    debug_root: RootLog, system: RetrySystem
) -> None:
    """The retry worker reads the secret on its first Twilio call, lists the conversation's
    participants (their phone numbers) and sends the original's body again."""
    debug_root.records.clear()  # the stack's deployment: the test's own doing
    conversation, message = system.message(address="+15557654321", body="your code is 482913")
    system.fail(conversation, message)
    system.drain()
    assert len(system.created()) == 1
    text = debug_root.text()
    assert TEST_AUTH_TOKEN not in text
    assert "5557654321" not in text
    assert "482913" not in text


def test_an_sms_fallback_at_debug_keeps_the_recipient_out_of_the_logs(
    debug_root: RootLog, system: RetrySystem
) -> None:
    """The fallback's lookup puts the number in a query (`ParticipantConversations?Address=`)
    and its participant create in a form: twilio-python logs both at INFO, urllib3 the request
    line at DEBUG (held by redeliver.adapters.twilio.client); botocore, the claim's intent (a
    hash)."""
    system.load_retry(
        {
            "max_attempts": 3,
            "max_age_seconds": 86400,
            "rules": [{"codes": [63024], "action": "fallback_sms", "from": "+15550100000"}],
        }
    )
    debug_root.records.clear()  # the stack's deployment: the test's own doing
    conversation, original = system.message(channel="whatsapp", address="+12125557788")
    system.fail(conversation, original, 63024, status="failed")
    system.drain()
    [sent] = system.created()
    assert sent["conversation_sid"] != conversation  # an SMS conversation was looked up, made
    text = debug_root.text()
    assert TEST_AUTH_TOKEN not in text
    assert "2125557788" not in text
