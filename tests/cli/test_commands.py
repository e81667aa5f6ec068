"""The `redeliver` commands against the template deployed into moto and the Twilio simulator."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from redeliver_cli import main as cli
from redeliver_cli import redrive, webhook
from redeliver_cli.stack import DEFAULT_RETENTION_DAYS, CommandError, Stack
from tests.cli.test_entry_point import COMMANDS
from tests.integration.retry_system import RetrySystem
from tools.apigw import ROUTE_PATH
from tools.stack import TEMPLATE, DeployedStack, deploy, load_template
from tools.twilio_sim.simulator import TwilioSimulator


def run(capsys: pytest.CaptureFixture[str], stack: DeployedStack, *argv: str) -> tuple[int, str]:
    code = cli.main(["--stack", stack.name, *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_trace_shows_the_whole_chain_from_any_of_its_messages(
    system: RetrySystem,
    stack: DeployedStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.drain()
    [first] = system.created(conversation)
    system.fail(conversation, first["sid"], 30003, after=80)
    system.advance(1_000)  # attempt 2 waits 900 s from that failure
    system.drain()
    second = system.created(conversation)[1]
    assert system.webhook(conversation, second["sid"], "delivered", after=1000) == 200
    capsys.readouterr()  # the handlers' own output
    code, out = run(capsys, stack, "trace", second["sid"])
    assert code == 0
    assert f"chain of {original} (2 retries)" in out
    lines = out.splitlines()
    assert any("attempt 1: sent " + first["sid"] in line for line in lines)
    assert any("attempt 2: sent " + second["sid"] in line for line in lines)
    assert any(f"retry 2 {second['sid']} receipt" in line and "delivered" in line for line in lines)
    assert any(
        f"original {original} receipt" in line and "undelivered 30003" in line for line in lines
    )
    assert run(capsys, stack, "trace", original)[1].splitlines()[1:] == lines[1:]


def test_trace_says_what_is_wrong(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, stack, "trace", "IM" + "0" * 32)
    assert code == 1
    assert "no record of IM" in out
    with pytest.raises(SystemExit) as exit_:
        run(capsys, stack, "trace", "SM123")
    assert exit_.value.code == 2  # a usage error (tests/cli/test_exit_codes.py)
    assert "is not a message SID" in capsys.readouterr().err


def test_a_missing_stack_is_an_error_not_a_traceback(
    aws: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--stack", "nope", "stats"]) == 1
    assert "stack 'nope' not found" in capsys.readouterr().err


def test_stats_counts_the_window(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    other, lost = system.message()
    system.fail(other, lost, 30007, status="failed")
    system.poll()  # one retry sent, one give-up
    [retry] = system.created(conversation)
    system.sim.set_receipt(retry["sid"], "read")  # what its follow-up learns from Twilio
    system.drain()
    code, out = run(capsys, stack, "stats", "--hours", "100000")
    assert code == 0
    assert "receipts    3 {'failed': 1, 'read': 1, 'undelivered': 1}" in out
    assert "failures    2 (66.7 %)" in out
    assert "retries     1 sent, 1 recovered" in out
    assert "given up    1 {'permanent_error': 1}" in out


def test_redrive_counts_first_and_moves_with_yes(
    system: RetrySystem,
    stack: DeployedStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs = boto3.client("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=system.dlq_url, MessageBody=json.dumps({"n": n}))
    code, out = run(capsys, stack, "redrive")
    assert code == 0
    assert "about 3 job(s)" in out
    assert "--yes" in out
    assert len(system.queued()) == 0
    code, out = run(capsys, stack, "redrive", "--yes", "--by-hand")
    assert "Moved 3 job(s)" in out
    assert sorted(job["n"] for job in system.queued()) == [0, 1, 2]
    assert "about 0 job(s)" in run(capsys, stack, "redrive")[1]


def test_redrive_uses_an_sqs_message_move_task(
    system: RetrySystem,
    stack: DeployedStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto does not implement StartMessageMoveTask: that one call is answered here, with
    what AWS answers, and its arguments checked; every other call goes to moto."""
    boto3.client("sqs").send_message(QueueUrl=system.dlq_url, MessageBody="{}")
    calls: list[dict[str, Any]] = []
    real_client = boto3.client

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(service, *args, **kwargs)
        if service == "sqs":

            def answer(params: dict[str, Any], **_: Any) -> Any:
                calls.append(json.loads(params["body"]))  # SQS speaks JSON
                return AWSResponse("https://sqs", 200, {}, None), {"TaskHandle": "handle-1"}

            made.meta.events.register("before-call.sqs.StartMessageMoveTask", answer)
        return made

    monkeypatch.setattr(redrive.boto3, "client", client)
    code, out = run(capsys, stack, "redrive", "--yes")
    assert code == 0
    assert "Started message move task handle-1" in out
    [params] = calls
    assert params["SourceArn"].endswith(stack.physical_ids["RetryDLQ"].rsplit("/", 1)[1])
    assert params["DestinationArn"].endswith(stack.physical_ids["RetryQueue"].rsplit("/", 1)[1])


def test_configure_webhook_merges_the_filter_and_can_dry_run(
    system: RetrySystem,
    stack: DeployedStack,
    sim: TwilioSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = sim.chat_service_sid
    sim.service_webhooks[service] = {
        "account_sid": sim.account_sid,
        "chat_service_sid": service,
        "pre_webhook_url": None,
        "post_webhook_url": "https://old.example/hook",
        "filters": ["onMessageAdded"],
        "method": "POST",
        "url": f"/v1/Services/{service}/Configuration/Webhooks",
    }
    target = "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/delivery-receipts"
    args = ["configure-webhook", service, "--url", target, "--twilio-url", sim.url]
    code, out = run(capsys, stack, *args, "--dry-run")
    assert code == 0
    assert "before: POST-webhook https://old.example/hook" in out
    # TrackMessages off: the onMessageAdded ingest would only ignore is taken out
    assert "after:  POST-webhook " + target + ", method POST, filters ['onDeliveryUpdated']" in out
    assert "onMessageAdded is taken out of the filters" in out
    assert "replaces the post-event webhook https://old.example/hook" in out
    assert "Dry run: nothing changed." in out
    assert sim.service_webhooks[service]["post_webhook_url"] == "https://old.example/hook"
    code, out = run(capsys, stack, *args)
    assert code == 0
    assert "Updated." in out
    assert sim.service_webhooks[service]["post_webhook_url"] == target
    assert sim.service_webhooks[service]["filters"] == ["onDeliveryUpdated"]
    with pytest.raises(SystemExit) as exit_:
        run(capsys, stack, "configure-webhook", "IS123", "--url", target)
    assert exit_.value.code == 2  # a usage error (tests/cli/test_exit_codes.py)
    assert "is not a Conversation Service SID" in capsys.readouterr().err


def test_configure_webhook_subscribes_on_message_added_with_track_messages(
    aws: None, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = deploy("tracking", {"TrackMessages": "true"})
    service = sim.chat_service_sid
    sim.service_webhooks[service] = {
        "account_sid": sim.account_sid,
        "chat_service_sid": service,
        "pre_webhook_url": None,
        "post_webhook_url": None,
        "filters": ["onConversationAdded"],
        "method": "POST",
    }
    target = "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/delivery-receipts"
    argv = ["--stack", deployed.name, "configure-webhook", service, "--url", target]
    assert cli.main([*argv, "--twilio-url", sim.url]) == 0, capsys.readouterr()
    assert sim.service_webhooks[service]["filters"] == [
        "onConversationAdded",
        "onDeliveryUpdated",
        "onMessageAdded",
    ]
    # ... which reconciliation needs: without it, TrackMessages records nothing
    off = deploy("tracking-no-reconcile", {"TrackMessages": "true", "ReconcileAfterMinutes": "0"})
    assert not webhook.tracks_messages(Stack.find(off.name))


def test_configure_webhook_does_not_switch_a_get_service_to_post_unasked(
    system: RetrySystem,
    stack: DeployedStack,
    sim: TwilioSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio has one Method for a service's pre- and post-event webhooks: moving the post-event
    webhook to POST moves the customer's pre-event webhook too. Said, and done only when asked."""
    service = sim.chat_service_sid
    sim.service_webhooks[service] = {
        "account_sid": sim.account_sid,
        "chat_service_sid": service,
        "pre_webhook_url": "https://app.example/pre",
        "post_webhook_url": None,
        "filters": ["onMessageAdd"],
        "method": "GET",
    }
    target = "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/delivery-receipts"
    args = ["configure-webhook", service, "--url", target, "--twilio-url", sim.url]
    code, out = run(capsys, stack, *args, "--dry-run")
    assert code == 0
    assert "method GET" in out
    assert "pre-event webhook https://app.example/pre is called with POST too" in out
    assert "--switch-to-post" in out
    code, out = run(capsys, stack, *args)
    assert code == 1
    assert "run again with --switch-to-post" in out
    assert "Not changed: the service's webhooks use GET." in out
    assert sim.service_webhooks[service]["method"] == "GET"
    assert sim.service_webhooks[service]["post_webhook_url"] is None
    code, out = run(capsys, stack, *args, "--switch-to-post")
    assert (code, "Updated." in out) == (0, True), out
    assert sim.service_webhooks[service]["method"] == "POST"
    assert sim.service_webhooks[service]["post_webhook_url"] == target


def test_configure_webhook_points_twilio_at_the_custom_domain(
    aws: None, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """With WebhookBaseUrl set, ingest checks signatures against it: Twilio must post there,
    also for a stack whose WebhookUrl output still names the execute-api URL (deployed before
    the output followed WebhookBaseUrl). Another --url is refused: every webhook would be 403."""
    base = "https://hooks.example.com/v1"
    public = base + ROUTE_PATH
    deployed = deploy("custom-domain", {"WebhookBaseUrl": base})
    found = Stack.find(deployed.name)
    assert found.outputs["WebhookUrl"] == public
    service = sim.chat_service_sid
    argv = ["--stack", deployed.name, "configure-webhook", service, "--twilio-url", sim.url]
    assert cli.main(argv) == 0, capsys.readouterr()
    assert sim.service_webhooks[service]["post_webhook_url"] == public

    sim.service_webhooks[service]["post_webhook_url"] = None
    execute_api = "https://abc123.execute-api.us-east-1.amazonaws.com" + ROUTE_PATH
    older = Stack(found.name, {**found.outputs, "WebhookUrl": execute_api}, found.parameters)
    lines = webhook.configure_webhook(older, service, False, None, sim.url)
    assert sim.service_webhooks[service]["post_webhook_url"] == public
    assert any(f"POST-webhook {public}" in line for line in lines)
    with pytest.raises(CommandError, match="WebhookBaseUrl"):
        webhook.configure_webhook(older, service, False, execute_api, sim.url)
    assert sim.service_webhooks[service]["post_webhook_url"] == public


def test_the_commands_webhook_path_is_the_templates() -> None:
    [event] = load_template(TEMPLATE)["Resources"]["IngestFunction"]["Properties"][
        "Events"
    ].values()
    assert event["Properties"]["Path"] == webhook.WEBHOOK_PATH == ROUTE_PATH


def test_every_command_an_alarm_names_exists_with_its_options() -> None:
    """An alarm's description is what on-call reads first: a command it names must be one
    `redeliver` has, with options it takes (SpillDLQ's said an SQS redrive by hand after
    `redrive --spill` existed)."""
    [commands] = [a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction)]
    named: dict[str, list[str]] = {}
    for name, resource in load_template(TEMPLATE)["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        description = resource["Properties"]["AlarmDescription"]
        for command, options in re.findall(
            r"\bredeliver ([a-z][a-z-]*)((?: --?[a-z-]+)*)", description
        ):
            assert command in commands.choices, (name, command)
            for option in options.split():
                assert option in commands.choices[command]._option_string_actions, (name, option)
            named.setdefault(name, []).append(f"{command}{options}")
    assert named["SpillDLQNotEmptyAlarm"] == ["redrive --spill"]
    assert named["RetryDLQNotEmptyAlarm"] == ["redrive"]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        assert f"usage: redeliver {command}" in capsys.readouterr().out


# -- policy v2: policy check and suppressions ---------------------------------------------------


def test_policy_check_validates_and_shows_what_each_sample_failure_gets(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    document = tmp_path / "policy.json"
    document.write_text(
        json.dumps(
            {
                "quiet_hours": {"start": "21:00", "end": "08:00"},
                "rules": [
                    {"codes": [63016], "action": "template", "content_sid": "HX" + "0" * 32},
                    {"codes": [63024], "action": "fallback_sms", "from": "+15550100000"},
                    {"codes": [21610], "action": "suppress"},
                    {"codes": "*", "action": "retry", "delays": [60]},
                ],
            }
        )
    )
    # 15:00 UTC is 11:00 in New York (the default sample recipient): outside quiet hours
    code = cli.main(["policy", "check", str(document), "--at", "2026-06-02T15:00:00Z"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{document}: valid." in out
    assert "63016  send Content template HX" in out
    assert "63024  send as SMS from +15550100000" in out
    assert "21610  suppress the recipient for 90 days" in out
    # the wait as the rule reads it, then as the worker's jitter (x0.9 to x1.1) stretches it
    assert "as the worker's jitter stretches it: x0.90 to x1.10" in out
    assert (
        "30003  wait 60 s, until 2026-06-02T15:01:00Z, then look again; with jitter 54-66 s"
        '  (only "*" matched'
    ) in out
    # 03:00 UTC is 23:00 in New York: held until 08:00 there, spread over a tenth of the wait
    cli.main(["policy", "check", str(document), "--at", "2026-06-02T03:00:00Z"])
    assert (
        "63016  wait 32400 s, until 2026-06-02T12:00:00Z, then look again; "
        "with jitter 32400-35640 s"
    ) in capsys.readouterr().out


def test_policy_check_names_the_invalid_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    document = tmp_path / "policy.json"
    document.write_text(json.dumps({"rules": [{"codes": [63016], "action": "template"}]}))
    assert cli.main(["policy", "check", str(document)]) == 1
    assert "rules[0].content_sid: must be a Content SID" in capsys.readouterr().err
    missing = str(tmp_path / "absent.json")
    assert cli.main(["policy", "check", missing]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_policy_check_warns_of_a_rule_an_earlier_one_shadows(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """The first matching rule decides: a later rule for a code an earlier one names never sees
    it, and a rule after a "*" rule is never used at all. Valid, and said."""
    document = tmp_path / "policy.json"
    content = "HX" + "0" * 32
    rules = [
        {"codes": [30007, 63016], "action": "give_up"},
        {"codes": [63016], "action": "template", "content_sid": content},
        {"codes": [30003, 30007], "action": "retry", "delays": [60]},
        {"codes": "*", "action": "retry", "delays": [300]},
        {"codes": [63024], "action": "fallback_sms", "from": "+15550100000"},
        {"codes": "*", "action": "give_up"},
    ]
    document.write_text(json.dumps({"rules": rules}))
    assert cli.main(["policy", "check", str(document)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: rules[1] (template) is never used: 63016 is decided first by rules[0] (give_up)",
        "warning: rules[2] (retry) never sees 30007: it is decided first by rules[0] (give_up)",
        'warning: rules[4] (fallback_sms) is never used: rules[3] (retry, "*") matches every code'
        " first",
        'warning: rules[5] (give_up) is never used: rules[3] (retry, "*") matches every code first',
    ]
    document.write_text(json.dumps({"rules": rules[2:4]}))
    assert cli.main(["policy", "check", str(document)]) == 0
    assert "warning:" not in capsys.readouterr().out


def test_policy_check_holds_max_age_to_the_default_stacks_retention(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """Without --retention-days, a max_age the default stack's retry function refuses on every
    invocation (40 days against ReceiptRetentionDays' 30) is refused here too."""
    document = tmp_path / "policy.json"
    rules = [{"codes": "*", "action": "retry", "delays": [300]}]
    document.write_text(json.dumps({"max_age_seconds": 40 * 86_400, "rules": rules}))
    assert cli.main(["policy", "check", str(document)]) == 1
    assert "ReceiptRetentionDays=30" in capsys.readouterr().err
    assert cli.main(["policy", "check", str(document), "--retention-days", "60"]) == 0
    assert "ReceiptRetentionDays=60" in capsys.readouterr().out
    document.write_text(json.dumps({"max_age_seconds": 30 * 86_400, "rules": rules}))
    assert cli.main(["policy", "check", str(document)]) == 0
    assert "ReceiptRetentionDays=30 (the template's default" in capsys.readouterr().out


def test_policy_check_refuses_a_recipient_as_suppressions_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """One check of a phone number (redeliver_cli.arguments.phone_number), one answer."""
    document = tmp_path / "policy.json"
    document.write_text(json.dumps({"rules": [{"codes": "*", "action": "retry"}]}))
    for bad in ("hello", "2125550100", "whatsapp:+12125550100"):
        said = []
        for argv in (
            ["policy", "check", str(document), "--to", bad],
            ["suppressions", "check", bad],
        ):
            with pytest.raises(SystemExit) as exit_:
                cli.main(argv)
            assert exit_.value.code == 2
            said.append(capsys.readouterr().err.splitlines()[-1].rsplit(": ", 1)[-1])
        assert (
            said
            == [f"{bad!r} is not an E.164 number (+ and up to 15 digits, e.g. +12125550100)"] * 2
        )


def test_the_commands_default_retention_is_the_templates() -> None:
    parameter = load_template(TEMPLATE)["Parameters"]["ReceiptRetentionDays"]
    assert int(parameter["Default"]) == DEFAULT_RETENTION_DAYS


def test_suppressions_check_and_remove(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    number = "+12125550100"
    conversation, original = system.message(address=number)
    system.fail(conversation, original, 21610, status="failed")  # the default policy suppresses
    system.drain()
    capsys.readouterr()
    code, out = run(capsys, stack, "suppressions", "check", number)
    assert code == 0
    assert f"{number}: suppressed since" in out
    assert "(error 21610; SUPPRESS#" in out
    assert (
        run(capsys, stack, "suppressions", "check", "+12125550199")[1]
        .strip()
        .endswith("not suppressed")
    )
    removed = run(capsys, stack, "suppressions", "remove", number)[1]
    assert f"{number}: suppression lifted" in removed
    assert run(capsys, stack, "suppressions", "check", number)[1].strip() == (
        f"{number}: not suppressed"
    )
    assert "was not suppressed" in run(capsys, stack, "suppressions", "remove", number)[1]
    with pytest.raises(SystemExit) as exit_:
        run(capsys, stack, "suppressions", "check", "2125550100")
    assert exit_.value.code == 2  # a usage error (tests/cli/test_exit_codes.py)
    assert "is not an E.164 number" in capsys.readouterr().err


def test_redrive_by_hand_keeps_going_past_an_empty_short_poll(
    system: RetrySystem,
    stack: DeployedStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A short poll samples some of SQS's servers and may answer empty while the queue holds
    messages (moto's always answers what it holds: the first answer is made empty here)."""
    sqs = boto3.client("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=system.dlq_url, MessageBody=json.dumps({"n": n}))
    answers: list[str] = []

    def sampled(params: dict[str, Any], **_: Any) -> Any:
        if answers:
            return None  # moto answers
        answers.append("empty")
        return AWSResponse("https://sqs", 200, {}, None), {}

    real_client = boto3.client

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(service, *args, **kwargs)
        if service == "sqs":
            made.meta.events.register("before-call.sqs.ReceiveMessage", sampled)
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redrive.boto3, "client", client)
        code, out = run(capsys, stack, "redrive", "--yes", "--by-hand")
    assert code == 0, out
    assert answers == ["empty"]
    assert "Moved 3 job(s)" in out
    assert sorted(job["n"] for job in system.queued()) == [0, 1, 2]
    assert "about 0 job(s)" in run(capsys, stack, "redrive")[1]


def test_redrive_by_hand_reports_what_remains_when_its_deadline_passes(
    system: RetrySystem,
    stack: DeployedStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A job in flight (received elsewhere, not deleted) stays in RetryDLQ: the redrive waits for
    it until its deadline, then says it remains instead of reporting success."""
    sqs = boto3.client("sqs")
    for n in range(2):
        sqs.send_message(QueueUrl=system.dlq_url, MessageBody=json.dumps({"n": n}))
    [held] = sqs.receive_message(
        QueueUrl=system.dlq_url, MaxNumberOfMessages=1, VisibilityTimeout=600
    )["Messages"]
    code, out = run(capsys, stack, "redrive", "--yes", "--by-hand", "--wait-seconds", "1")
    assert code == 1, out
    assert "moved 1 job(s)" in out
    assert "1 job(s) remain in RetryDLQ (0 visible, 1 in flight)" in out
    assert [job["n"] for job in system.queued()] == [1 - json.loads(held["Body"])["n"]]


def test_configure_webhook_says_the_offline_url_cannot_be_resolved(
    system: RetrySystem,
    stack: DeployedStack,
    sim: TwilioSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """moto creates no HTTP API: the offline stack's WebhookUrl output keeps `${WebhookApi}`.
    Said plainly, pointing to --url, and never offered to Twilio."""
    assert "${WebhookApi}" in stack.outputs["WebhookUrl"]
    service = sim.chat_service_sid
    argv = ["configure-webhook", service, "--twilio-url", sim.url]
    for dry_run in (["--dry-run"], []):
        code, out = run(capsys, stack, *argv, *dry_run)
        assert code == 1, out
        assert "POST-webhook https://${WebhookApi}" not in out
        assert "It cannot be resolved offline: give the URL with --url" in out
    assert service not in sim.service_webhooks or not sim.service_webhooks[service].get(
        "post_webhook_url"
    )
    local = "http://127.0.0.1:3000" + ROUTE_PATH
    code, out = run(capsys, stack, *argv, "--url", local, "--dry-run")
    assert (code, f"after:  POST-webhook {local}," in out) == (0, True), out
