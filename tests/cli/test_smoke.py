"""`redeliver smoke` against the template deployed into moto, the Twilio simulator and the webhook
route on loopback (tests/cli/conftest.py: `webhook`, the real ingest handler behind it).

Where moto differs from AWS: its CloudFormation creates no AWS::CloudWatch::Alarm (it warns "No
Moto CloudFormation support for AWS::CloudWatch::Alarm" and lists none among the stack's
resources), where AWS creates each alarm of the template whose Condition holds, named
`<stack>-<LogicalId>-<suffix>` and listed with that name as its physical id. So against moto the
alarm check says it cannot run and is skipped; its real path is tested by creating the alarms in
moto's CloudWatch (put_metric_alarm) and pointing the check at them, as the stack's resources
would (`stack_alarm_names`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest

from redeliver_cli import main as cli
from redeliver_cli import smoke
from redeliver_cli.stack import Stack, partition
from tests.integration.retry_system import RetrySystem
from tests.lambdas import invoke, load_function
from tools.apigw import http_api_event
from tools.samples import receipt_fields
from tools.stack import (
    TEMPLATE,
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    DeployedStack,
    load_template,
)
from tools.twilio_sim.faults import Fault
from tools.twilio_sim.simulator import TwilioSimulator

ELSEWHERE = "https://hooks.example.com/twilio"
SKIP = "–"  # noqa: RUF001 - the en dash is the skipped mark
ALARMS = sum(
    r["Type"] == "AWS::CloudWatch::Alarm" for r in load_template(TEMPLATE)["Resources"].values()
)


def run(
    capsys: pytest.CaptureFixture[str],
    stack: DeployedStack,
    sim: TwilioSimulator,
    webhook: str,
    *argv: str,
) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(
        ["--stack", stack.name, "smoke", "--url", webhook, "--twilio-url", sim.url, *argv]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def point(sim: TwilioSimulator, service: str, url: str, method: str = "POST") -> None:
    """A service's webhook configuration, as configure-webhook (or someone else) left it."""
    sim.service_webhooks[service] = {
        "account_sid": sim.account_sid,
        "chat_service_sid": service,
        "pre_webhook_url": None,
        "post_webhook_url": url,
        "filters": ["onMessageAdded", "onDeliveryUpdated"],
        "method": method,
    }


def alarms_in_cloudwatch(
    stack: DeployedStack, monkeypatch: pytest.MonkeyPatch, *, leave_out: str = ""
) -> dict[str, str]:
    """Each alarm of template.yaml created in moto's CloudWatch (but `leave_out`, as if deleted
    by hand) under the name AWS would give it, and the check pointed at them as the stack's
    resources would (module docstring). NoReceiptsAlarm's Condition is off by default: none."""
    names = {
        logical: f"{stack.name}-{logical}-SMOKE0TEST"
        for logical, resource in load_template(TEMPLATE)["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and logical != "NoReceiptsAlarm"
    }
    cloudwatch = boto3.client("cloudwatch")
    for logical, name in names.items():
        if logical != leave_out:
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="Redeliver",
                MetricName=logical,
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
    monkeypatch.setattr(smoke, "stack_alarm_names", lambda _: names)
    return names


def line(out: str, start: str) -> str:
    [found] = [text for text in out.splitlines() if text.startswith(start)]
    return found


def test_a_ready_stack_passes_every_check_and_its_test_receipt_stays_stored(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = system.sim
    assert (
        cli.main(
            [
                *("--stack", stack.name, "configure-webhook", sim.chat_service_sid),
                *("--url", webhook, "--twilio-url", sim.url),
            ]
        )
        == 0
    )
    other = sim.add_service("someone else's")
    point(sim, other, ELSEWHERE)

    code, out = run(capsys, stack, sim, webhook)
    assert code == 0, out
    assert line(out, "✓ the secret: ") == (
        f"✓ the secret: {Stack.find(stack.name).parameters['TwilioSecretArn']} is JSON with "
        f"account_sid {TEST_ACCOUNT_SID}, auth_token (not shown)"
    )
    assert "redeliver-test-auth-token" not in out  # the token is never printed
    assert line(out, "✓ Twilio accepts the secret's credentials: ").endswith(
        "list its Conversation Services (GET /v1/Services, page size 1; asked at "
        f"{sim.url}, not Twilio: the offline simulator takes any)"
    )
    assert line(out, "✓ the webhook answers a signed test receipt: ").startswith(
        f"✓ the webhook answers a signed test receipt: HTTP 200 from {webhook} to a delivered "
        "receipt of a made-up message, IM"
    )
    assert line(out, "✓ the secret verifies: ") == (
        "✓ the secret verifies: ingest accepted the signature made with the secret's auth_token "
        f"over {webhook.replace('http://', 'https://')}"
    )
    stored = line(out, "✓ the test receipt is stored: ")
    [receipt, message] = re.findall(r"receipt (DY\w{32}) of (IM\w{32})", stored)[0]
    assert "the test receipt stays in the table until its TTL, 20" in stored
    assert "(ReceiptRetentionDays 30)" in stored
    [item] = partition(stack.outputs["ReceiptsTableName"], message)
    assert (item["sk"], item["status"]) == (f"RCPT#{receipt}", "delivered")
    assert not item.get("retry_pending_at")  # a delivered receipt: no retry
    assert boto3.client("sqs").receive_message(QueueUrl=system.queue_url).get("Messages") is None
    assert line(out, f"{SKIP} the alarms exist: skipped: ").endswith(
        "this check cannot run offline: moto's CloudFormation creates no AWS::CloudWatch::Alarm "
        f"(it skips each with a warning), so this stack has none of its template's {ALARMS}; "
        "against a deployed stack each is looked up in CloudWatch"
    )
    assert line(out, f"✓ Conversation Service {sim.chat_service_sid}: ")
    assert line(out, f"{SKIP} the account's other services: ").endswith(
        f"1 post elsewhere, not checked: {other} ({ELSEWHERE}) (name one with --service to hold "
        "it to this stack)"
    )
    assert line(out, "8 checks: ") == "8 checks: 6 passed, 0 failed, 2 skipped"
    assert ("GET", "/v1/Services") in sim.requests

    # The alarms' real path: each in CloudWatch under the name the stack's resources give it
    names = alarms_in_cloudwatch(stack, monkeypatch)
    code, out = run(capsys, stack, sim, webhook, "--service", sim.chat_service_sid)
    assert code == 0, out
    assert line(out, "✓ the alarms exist: ") == (
        f"✓ the alarms exist: all {len(names)} of the template's alarms are in CloudWatch; 1 off "
        "by their condition: NoReceiptsAlarm (HasNoReceiptsAlarm)"
    )
    assert line(out, f"✓ Conversation Service {sim.chat_service_sid}: ") == (
        f"✓ Conversation Service {sim.chat_service_sid}: posts onDeliveryUpdated to {webhook} "
        "(POST)"
    )
    assert line(out, "7 checks: ") == "7 checks: 7 passed, 0 failed, 0 skipped"


def test_a_wrong_auth_token_fails_the_secret_check_with_the_reason(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The secret now holds another auth token than the one ingest verifies with: ingest's
    containers keep the secret they read (SECRET_MAX_AGE_SECONDS) and re-read it on a refused
    signature at most once a minute (its clock stopped here: that minute's re-read is spent)."""
    sim = system.sim
    point(sim, sim.chat_service_sid, webhook)
    environment = {**stack.environment("IngestFunction"), "SECRET_MAX_AGE_SECONDS": "86400"}
    system.ingest = load_function("ingest", environment, monkeypatch)
    monkeypatch.setattr(system.ingest.ingest._verifier, "_clock", lambda: 1_000.0)
    code, out = run(capsys, stack, sim, webhook)
    assert code == 0, out  # ingest has read the secret
    forged = invoke(system.ingest, http_api_event(receipt_fields(), token="forged"))
    assert forged["statusCode"] == 403  # and spent its re-read of the minute
    arn = Stack.find(stack.name).parameters["TwilioSecretArn"]
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn,
        SecretString=json.dumps({"account_sid": TEST_ACCOUNT_SID, "auth_token": "not-ingests"}),
    )

    code, out = run(capsys, stack, sim, webhook)
    assert code == 1, out
    assert line(out, "✓ the webhook answers a signed test receipt: ") == (
        f"✓ the webhook answers a signed test receipt: HTTP 403 from {webhook}: ingest judged "
        "the signature (next line)"
    )
    verifies = line(out, "✗ the secret verifies: ")
    assert "ingest refused the signature made with the secret's auth_token" in verifies
    assert "the secret's auth token does not match what ingest verifies with" in verifies
    assert "    fix: run again in 5 minutes; if it persists, check the secret" in out
    assert line(out, f"{SKIP} the test receipt is stored: ").endswith("nothing was stored")
    assert "not-ingests" not in out
    assert out.rstrip().endswith("error: 1 of 7 checks failed: the secret verifies")


def test_a_service_whose_webhook_points_elsewhere_fails_with_the_command_that_fixes_it(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = system.sim
    service = sim.chat_service_sid
    point(sim, service, ELSEWHERE)
    code, out = run(capsys, stack, sim, webhook)
    assert code == 1, out
    assert line(out, "✗ the services' webhooks point at the stack: ") == (
        "✗ the services' webhooks point at the stack: none of the account's 1 Conversation "
        f"Service(s) posts its webhooks to {webhook}: {service} ({ELSEWHERE})"
    )
    assert f"    fix: `redeliver configure-webhook IS…` (--url {webhook}; README: Deploy" in out

    code, out = run(capsys, stack, sim, webhook, "--service", service)
    assert code == 1, out
    assert line(out, f"✗ Conversation Service {service}: ") == (
        f"✗ Conversation Service {service}: its post-event webhook is {ELSEWHERE}, not {webhook}"
    )
    assert (
        f"    fix: `redeliver configure-webhook {service}` (--url {webhook}; --dry-run shows the "
        "change first; README: Deploy, step 3)"
    ) in out
    assert out.rstrip().endswith(f"error: 1 of 7 checks failed: Conversation Service {service}")

    # Pointed here, but GET and without the filter: each said, and the switch in the fix
    point(sim, service, webhook, method="GET")
    sim.service_webhooks[service]["filters"] = ["onMessageAdded"]
    code, out = run(capsys, stack, sim, webhook, "--service", service)
    assert code == 1, out
    assert line(out, f"✗ Conversation Service {service}: ") == (
        f"✗ Conversation Service {service}: onDeliveryUpdated is not among its filters "
        "['onMessageAdded']; its method is GET: ingest takes POST only"
    )
    assert f"(--url {webhook}; --switch-to-post; --dry-run shows" in out
    unknown = "IS" + "f" * 32
    code, out = run(capsys, stack, sim, webhook, "--service", unknown)
    assert f"✗ Conversation Service {unknown}: Twilio knows no such service" in out


def test_a_missing_alarm_is_named_with_how_to_find_and_restore_it(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = system.sim
    point(sim, sim.chat_service_sid, webhook)
    names = alarms_in_cloudwatch(stack, monkeypatch, leave_out="SpillDLQNotEmptyAlarm")
    code, out = run(capsys, stack, sim, webhook)
    assert code == 1, out
    assert line(out, "✗ the alarms exist: ") == (
        f"✗ the alarms exist: 1 of {len(names)} missing from CloudWatch: SpillDLQNotEmptyAlarm "
        f"({names['SpillDLQNotEmptyAlarm']}); 1 off by their condition: NoReceiptsAlarm "
        "(HasNoReceiptsAlarm)"
    )
    assert f"detect-stack-drift --stack-name {stack.name}` shows it" in out
    assert out.rstrip().endswith("error: 1 of 7 checks failed: the alarms exist")


def test_what_twilio_refuses_and_a_broken_secret_are_said_and_what_depends_on_them_skipped(
    system: RetrySystem,
    stack: DeployedStack,
    webhook: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = system.sim
    point(sim, sim.chat_service_sid, webhook)
    sim.fail_next("GET", Fault(status=401, code=20003))
    code, out = run(capsys, stack, sim, webhook)
    assert code == 1, out
    assert line(out, "✗ Twilio accepts the secret's credentials: ") == (
        f"✗ Twilio accepts the secret's credentials: the auth token of account {TEST_ACCOUNT_SID}"
        ": Twilio refused them (HTTP 401, code 20003: simulated error 20003)"
    )
    assert "    fix: put the account's current auth token in the secret" in out
    assert line(out, f"{SKIP} the services' webhooks point at the stack: ").endswith(
        "Twilio is asked with the secret's credentials"
    )
    assert "✓ the secret verifies" in out  # the webhook's own check does not need Twilio

    arn = Stack.find(stack.name).parameters["TwilioSecretArn"]
    key = "SK" + "1" * 32
    secret: dict[str, Any] = {
        "account_sid": TEST_ACCOUNT_SID,
        "auth_token": TEST_AUTH_TOKEN,
        "api_key_sid": key,
        "api_key_secret": "key-secret-never-shown",
    }
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(secret))
    code, out = run(capsys, stack, sim, webhook)
    assert code == 0, out  # both ways of calling Twilio are tried: the token signs the webhooks
    assert line(out, "✓ Twilio accepts the secret's credentials: ").startswith(
        f"✓ Twilio accepts the secret's credentials: the auth token and the API key {key} of "
        f"account {TEST_ACCOUNT_SID} list its Conversation Services"
    )
    assert f"api_key_sid {key} and api_key_secret (not shown)" in out
    assert "key-secret-never-shown" not in out

    secret = {"account_sid": TEST_ACCOUNT_SID}
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(secret))
    code, out = run(capsys, stack, sim, webhook)
    assert code == 1, out
    assert (
        line(out, "✗ the secret: ") == f"✗ the secret: the Twilio secret lacks auth_token ({arn})"
    )
    assert "    fix: store it as README: Deploy, step 1 says" in out
    for skipped in ("Twilio accepts", "the webhook answers", "the secret verifies", "the test"):
        assert line(out, f"{SKIP} {skipped}")
    assert line(out, f"{SKIP} the alarms exist: skipped: ")  # moto's: cannot run
