"""`redeliver send-receipt`: one signed receipt, posted over HTTP to the stack's webhook route,
here served on loopback by the real ingest handler as API Gateway would hand it the request
(tests/cli/conftest.py: `webhook`)."""

from __future__ import annotations

import json

import boto3
import pytest

from redeliver_cli import main as cli
from redeliver_cli.stack import Stack, partition
from tests.integration.retry_system import RetrySystem
from tools.apigw import ROUTE_PATH
from tools.stack import DeployedStack


def run(capsys: pytest.CaptureFixture[str], stack: DeployedStack, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["--stack", stack.name, "send-receipt", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_signed_failure_is_taken_and_retried(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conversation, message = system.message()
    service = system.sim.service_of(conversation)
    code, out = run(
        capsys,
        stack,
        *("--status", "undelivered", "--error-code", "30003", "--message", message),
        *("--conversation", conversation, "--service", service, "--url", webhook),
        *("--participant", system.sim.participant_of(conversation)),
        *("--at", "2026-11-27T10:00:05Z"),
    )
    assert code == 0, out
    assert f"signed for {webhook.replace('http://', 'https://')}" in out
    assert "ingest answered HTTP 200" in out
    assert f"`redeliver trace {message}`" in out
    [receipt] = partition(stack.outputs["ReceiptsTableName"], message)
    assert (receipt["status"], receipt["error_code"], receipt["conversation_sid"]) == (
        "undelivered",
        "30003",
        conversation,
    )
    system.drain()
    [retry] = system.created(conversation)  # the worker resent it, as for Twilio's own webhook

    # A message the table knows: a status change of its own receipt, where it lives
    code, out = run(capsys, stack, "--status", "delivered", "--message", message, "--url", webhook)
    assert code == 0, out
    [again] = [
        item
        for item in partition(stack.outputs["ReceiptsTableName"], message)
        if item["sk"].startswith("RCPT#")
    ]
    assert (again["sk"], again["status"]) == (receipt["sk"], "delivered")
    assert retry["sid"] != message


def test_any_status_and_code_made_up_sids_and_a_dry_run(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run(capsys, stack, "--status", "failed", "--error-code", "63016", "--url", webhook)
    assert code == 0, out
    message = out.split(" of ", 1)[1].split(":", 1)[0]
    [receipt] = partition(stack.outputs["ReceiptsTableName"], message)
    assert (receipt["status"], receipt["error_code"]) == ("failed", "63016")
    code, out = run(capsys, stack, "--status", "read", "--url", webhook, "--dry-run")
    assert code == 0, out
    assert "X-Twilio-Signature: " in out
    assert "  Status=read" in out
    assert out.rstrip().endswith("Dry run: nothing posted.")
    code, out = run(capsys, stack, "--status", "bogus status", "--url", webhook)
    assert code == 1, out  # ingest refuses what is not a status: 400, said
    assert "ingest answered HTTP 400" in out


def test_offline_it_needs_the_url_and_says_when_nothing_answers(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, stack, "--status", "undelivered", "--error-code", "30003")
    assert code == 1
    assert "It cannot be resolved offline: give the URL with --url" in out
    code, out = run(capsys, stack, "--status", "sent", "--url", "http://127.0.0.1:9" + ROUTE_PATH)
    assert code == 1
    assert "nothing answered at http://127.0.0.1:9" in out


def test_a_malformed_secret_is_said_never_a_traceback_nor_the_token(
    stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = Stack.find(stack.name).parameters["TwilioSecretArn"]
    secrets = boto3.client("secretsmanager")
    for value, said in (
        ("not json, token hunter2", f"the Twilio secret {arn} is not JSON"),
        (json.dumps({"account_sid": "AC" + "0" * 32}), "the Twilio secret lacks auth_token"),
        (json.dumps(["hunter2"]), "the Twilio secret must be a JSON object"),
    ):
        secrets.put_secret_value(SecretId=arn, SecretString=value)
        code, out = run(capsys, stack, "--status", "sent", "--url", "http://127.0.0.1:9/x")
        assert code == 1, out
        assert said in out
        assert "Traceback" not in out
        assert "hunter2" not in out
