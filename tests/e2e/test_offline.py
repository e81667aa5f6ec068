"""The offline stack end to end: a small seeded scenario through the real handlers, each in its
own process, against moto and the Twilio simulator; the report's invariants must hold."""

from __future__ import annotations

import http.client
import json
import shlex
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from redeliver.domain.policy_parse import parse_policy
from tools.latency import percentile
from tools.moto_server import free_port
from tools.offline.checks import Check, action_of
from tools.offline.cli import exit_code, load_test, main, serve_instructions
from tools.offline.policy import OFFLINE_ONLY_RULES, OFFLINE_POLICY, policy_notes
from tools.offline.report import Report, Settlement
from tools.offline.runtime import describe_job
from tools.offline.scenario import run_scenario
from tools.offline.sources import Scheduler
from tools.offline.stack import Offline, running
from tools.offline.state import twilio_truth
from tools.offline.tuning import schedule_seconds
from tools.offline.whereabouts import log_reasons
from tools.stack import ROOT
from tools.webhook_emitter import Mix, Stats


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offline]:
    with running(free_port(), tmp_path_factory.mktemp("offline"), seed=3) as offline:
        yield offline


@pytest.mark.slow
def test_a_seeded_scenario_keeps_every_invariant(stack: Offline) -> None:
    mix = Mix(failure_rate=0.4, retry_success=0.5, duplicate_rate=0.2, reorder_rate=0.3)
    report = run_scenario(stack, 40, mix, seed=3, timeout=90, progress=False, rate=100)
    assert report.violations == []
    assert report.api_answers == {200: report.webhooks.sent}
    assert report.dlq == 0
    assert report.retries_sent > 0  # the mix makes failures; the default policy retries them
    assert report.gave_up  # and gives some up (30005, or max attempts)
    assert sum(report.receipts.values()) >= 40
    # Every message the simulator created is a retry, one per (root, attempt).
    markers = [json.loads(m["attributes"])["redeliver"] for m in stack.sim.created]
    assert len({(m["root"], m["attempt"]) for m in markers}) == len(markers) == report.retries_sent
    assert "held   exactly one new message per attempt" in report.render()
    assert "every invariant held" in report.render()


# -- lost webhooks, recovered by asking Twilio ---------------------------------------------------


def _lost_failures(stack: Offline) -> list[tuple[str, str]]:
    """(message, receipt) of failures whose own webhook was lost while their `sent` was stored:
    the ones only the reconciler (or a retry's follow-up) can learn."""
    assert stack.emitter is not None
    truth = twilio_truth(stack)
    return [
        (f["MessageSid"], f["DeliveryReceiptSid"])
        for f in stack.emitter.dropped
        if f["Status"] in ("undelivered", "failed")
        and truth[(f["MessageSid"], f["DeliveryReceiptSid"])]["status"] == f["Status"]
        and f["DeliveryReceiptSid"] in stack.emitter.reached
    ]


def _stored_status(stack: Offline, message: str, receipt: str) -> str | None:
    item = boto3.client("dynamodb").get_item(
        TableName=stack.stack.outputs["ReceiptsTableName"],
        Key={"pk": {"S": f"MSG#{message}"}, "sk": {"S": f"RCPT#{receipt}"}},
        ConsistentRead=True,
    )
    return item.get("Item", {}).get("status", {}).get("S")


@pytest.mark.slow
def test_lost_webhooks_are_recovered_by_the_reconciler_and_every_failure_decided(
    stack: Offline,
) -> None:
    mix = Mix(failure_rate=1.0, retry_success=1.0, duplicate_rate=0.1, lose_rate=0.4)
    report = run_scenario(stack, 20, mix, seed=31, timeout=90, progress=False, rate=100)
    assert report.settlement.settled, report.unsettled
    assert report.violations == []
    lost = _lost_failures(stack)
    assert lost  # the seed loses failures whose `sent` was stored: only asking finds them
    assert stack.reconciler is not None
    assert stack.reconciler.totals["failures"] >= 1  # ReconciledFailures
    for message, receipt in lost:
        assert _stored_status(stack, message, receipt) in ("undelivered", "failed")
    text = report.render()
    assert "lost webhooks" in text
    assert "0 never learned" in text
    assert "reconciler      every 2 s:" in text
    assert "ReconcileAfterMinutes=1 (template default 30) with its clock 57 s ahead" in text


@pytest.mark.slow
def test_with_track_messages_a_failure_whose_every_webhook_was_lost_is_retried(
    stack: Offline,
) -> None:
    """TrackMessages (on offline): a receipt none of whose webhooks arrived is not invisible when
    its message's onMessageAdded did; the reconciler asks Twilio about the message and the failure
    is stored and decided. Only a message whose onMessageAdded was lost too stays invisible."""
    assert stack.tuning.tracking
    earlier = {message for message, _ in twilio_truth(stack)}  # the module's earlier scenarios'
    mix = Mix(failure_rate=1.0, retry_success=1.0, duplicate_rate=0.0, lose_rate=0.5)
    report = run_scenario(stack, 20, mix, seed=34, timeout=90, progress=False, rate=100)
    assert report.settlement.settled, report.unsettled
    assert report.violations == []
    emitter = stack.emitter
    assert emitter is not None
    truth = twilio_truth(stack)
    added_lost = {f["MessageSid"] for f in [*emitter.added_dropped, *emitter.added_lost]}
    # A message one of whose receipts reached ingest is reconciled by that receipt, not tracked
    # (a group message's other receipts: the limit docs/design.md names).
    heard = {message for message, receipt in truth if receipt in emitter.reached}
    unseen = [  # failures at Twilio of messages no receipt webhook of which reached ingest
        (message, receipt)
        for (message, receipt), r in truth.items()
        if r["status"] in ("undelivered", "failed")
        and message not in heard
        and message not in earlier  # this emitter's messages: its losses are known
    ]
    tracked = [(m, r) for m, r in unseen if m not in added_lost]
    assert tracked  # the seed loses every receipt webhook of some messages
    for message, receipt in tracked:
        assert _stored_status(stack, message, receipt) == truth[(message, receipt)]["status"]
    # Only those whose onMessageAdded was lost too are left unknown to Redeliver.
    for message, receipt in unseen:
        if message in added_lost:
            assert _stored_status(stack, message, receipt) is None
    assert stack.reconciler is not None
    assert stack.reconciler.totals["tracked_reconciled"] >= 1


@pytest.mark.slow
def test_a_lost_failure_not_recovered_breaks_the_run(stack: Offline) -> None:
    """The reconciler stopped: a failure whose webhook was lost stays at `sent`, and the check
    over Twilio's truth says so; started again, it recovers it and the run holds."""
    assert stack.reconciler is not None
    stack.reconciler.stop()
    mix = Mix(failure_rate=1.0, retry_success=1.0, duplicate_rate=0.0, lose_rate=0.5)
    try:
        report = run_scenario(stack, 20, mix, seed=32, timeout=90, progress=False)
        lost = _lost_failures(stack)
        assert lost
        assert report.settlement.settled
        [check] = [c for c in report.checks if c.name.startswith("every failure decided")]
        for message, _ in lost:
            assert any(
                v.startswith(f"failure of {message} (Twilio: ")
                and "its webhook lost) is stored as sent: never learned" in v
                for v in check.violations
            ), check.violations
        assert exit_code(report) == 1
        assert "BROKEN every failure decided or visible in the DLQ" in report.render()
    finally:
        stack.reconciler = Scheduler(stack.runtime, "ReconcileFunction", 2.0).start()
    # Settles once nothing is at `sent`: the reconciler has asked, the failures are retried.
    again = run_scenario(stack, 0, Mix(), seed=33, timeout=90, progress=False)
    assert again.settlement.settled, again.unsettled
    assert again.violations == []
    for message, receipt in lost:
        assert _stored_status(stack, message, receipt) in ("undelivered", "failed")


@pytest.mark.slow
def test_the_local_api_answers_a_signed_curl_and_rejects_an_unsigned_one(
    stack: Offline,
) -> None:
    command = next(
        line for line in serve_instructions(stack).splitlines() if line.strip().startswith("curl")
    )
    words = shlex.split(command)
    signature = words[words.index("-H") + 1].split(": ", 1)[1]
    fields = dict(w.split("=", 1) for w in words[words.index("--data-urlencode") + 1 :: 2])
    body = urlencode(fields)
    port = int(stack.api.url.rsplit(":", 1)[1])
    for headers, expected in (({"X-Twilio-Signature": signature}, 200), ({}, 403)):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "POST",
            "/twilio/delivery-receipts",
            body,
            {"Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        assert connection.getresponse().status == expected


@pytest.mark.slow
def test_the_load_test_sends_bounded_signed_webhooks(
    stack: Offline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What --target does to a deployed stack, aimed at the local API instead."""
    before = sum(stack.api.answers.values())
    url = stack.api.url + "/twilio/delivery-receipts"
    assert load_test(url, stack.token, 10, rate=50, mix=Mix(), seed=5) == 0
    sent = sum(stack.api.answers.values()) - before
    assert 10 <= sent <= 40  # 2-3 receipts a message, a few duplicates: bounded
    assert "answers {200: " in capsys.readouterr().out
    assert load_test(url, "wrong-token", 2, rate=50, mix=Mix(), seed=6) == 1


def test_a_report_with_a_broken_invariant_says_so() -> None:
    report = Report(
        1,
        1.0,
        Stats(),
        Counter({200: 1}),
        checks=[Check("every failure decided", ["failure of IMx left without a decision"])],
    )
    text = report.render()
    assert "BROKEN every failure decided" in text
    assert "FAILED: 1 invariant(s) broken" in text
    assert exit_code(report) == 1
    # Unsettled, what a check finds may be work in flight: open, not yet a verdict; still a fail.
    report.settlement = Settlement(False, "interrupted (KeyboardInterrupt)")
    text = report.render()
    assert "open   every failure decided" in text
    assert "invariants (as things stood: not settled)" in text
    assert "FAILED: did not settle; 1 invariant(s) open" in text
    assert exit_code(report) == 130


def test_the_command_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--failure-rate", "2"],
        ["--lose-webhooks", "1.5"],
        ["--messages", "-1"],
        ["--target", "https://example.invalid/x"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    assert "TWILIO_AUTH_TOKEN" in capsys.readouterr().err


def test_a_busy_port_is_said_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exit_:
            main(["--port", str(taken.getsockname()[1])])
    assert exit_.value.code == 2
    assert "is in use" in capsys.readouterr().err


def test_the_offline_policy_is_valid_and_keeps_the_default_rules() -> None:
    policy = parse_policy(OFFLINE_POLICY)
    default = parse_policy(DEFAULT_POLICY_DOCUMENT)
    extra = len(OFFLINE_ONLY_RULES)
    assert [(r.codes, r.action) for r in policy.rules[extra:]] == [
        (r.codes, r.action) for r in default.rules
    ]
    # Only its offline rules (template, fallback_sms) come first, and the report says so.
    assert [r.action for r in policy.rules[:extra]] == ["template", "fallback_sms"]
    assert any("offline-only rules" in note for note in policy_notes())


@pytest.mark.slow
def test_a_small_run_takes_every_action_and_keeps_every_invariant(
    stack: Offline,
) -> None:
    """Each action of policy v2 shows in the report, with its invariants."""
    mix = Mix(failure_rate=0.6, retry_success=0.5, whatsapp_share=0.5)
    report = run_scenario(stack, 60, mix, seed=41, timeout=120, progress=False, rate=100)
    assert report.settlement.settled, report.unsettled
    assert report.violations == []
    for action in ("retry", "template", "fallback_sms", "suppress", "give_up"):
        assert report.actions[action] > 0, (action, report.actions)
    assert report.actions["recipient_suppressed"] > 0, report.actions
    names = [check.name for check in report.checks]
    assert "each resend as its action says" in names
    assert "  actions         retry " in report.render()
    assert "every invariant held" in report.render()
    # Every SMS-fallback message went out by SMS, from the scenario's SMS number.
    fallbacks = [m for m in stack.sim.created if action_of(m) == "fallback_sms"]
    assert fallbacks
    for message in fallbacks:
        chat = stack.sim.conversations[message["conversation_sid"]]
        assert any((p["messaging_binding"] or {}).get("type") == "sms" for p in chat.participants)
    _assert_latency_from_this_run(stack, report)


def _assert_latency_from_this_run(stack: Offline, report: Report) -> None:
    """The failure-to-resend time (0 s rules) beside a bare SQS round trip, from this run's events:
    one figure per template or SMS-fallback resend of a failure whose webhook ingest answered, each
    a plausible time; the round trip probed meanwhile."""
    latency = report.latency
    assert latency is not None
    assert latency.codes == [63016, 63024, 63032]
    assert stack.emitter is not None
    posted = stack.emitter.failure_posted
    first_create: dict[str, float] = {}
    for m in stack.sim.created:
        if action_of(m) in ("template", "fallback_sms"):
            failed = json.loads(m["attributes"])["redeliver"]["retry_of"]
            at = stack.sim.created_at[m["sid"]]
            first_create[failed] = min(at, first_create.get(failed, at))
    # This run's resends of failures whose webhook ingest accepted (the module's stack saw
    # earlier runs too); one stored before its webhook was posted was the reconciler's doing.
    paired = {
        failed: at - posted[failed][0]
        for failed, at in first_create.items()
        if failed in posted and posted[failed][1] in latency.codes
    }
    assert paired
    assert len(latency.resend) == sum(1 for s in paired.values() if s >= 0)
    assert latency.before_webhook == sum(1 for s in paired.values() if s < 0)
    assert all(0 < seconds < 60 for seconds in latency.resend), latency.resend
    assert len(latency.round_trip) >= 10  # a probe every 0.25 s while the run lasted
    assert all(0 < seconds < 10 for seconds in latency.round_trip), latency.round_trip
    # A resend includes at least one queue hop: not quicker than the bare hop.
    assert percentile(latency.resend, 0.5) > percentile(latency.round_trip, 0.5)
    text = report.render()
    assert "  failure→resend  p50 " in text
    assert "from posting the first failure webhook ingest accepted to the simulator storing" in text
    assert "  SQS round trip  p50 " in text
    assert "x that at p50" in text


def test_workdir_is_ignored_by_git() -> None:
    assert ".offline/" in (Path(ROOT) / ".gitignore").read_text()


# -- the report is always printed, and says what did not settle ---------------------------------
# (These leave work in flight on the shared stack: they come last.)


@pytest.mark.slow
def test_a_run_that_does_not_settle_reports_what_is_left_and_where(
    stack: Offline,
) -> None:
    """Before: `_settle` raised TimeoutError and the command printed a traceback, no report."""
    mix = Mix(failure_rate=1.0, retry_success=0.0, duplicate_rate=0.0, reorder_rate=0.0)
    # One message a second: whatever the machine's speed, webhooks are still to send when the
    # run stops (at most 5 x 0.5 s in all).
    report = run_scenario(stack, 10, mix, seed=21, timeout=0.5, progress=False, rate=1)
    assert not report.settlement.settled
    # 0.5 s without progress, or 5 x 0.5 s in all while still moving: whichever comes first
    assert report.settlement.why.startswith("not done within "), report.settlement.why
    assert report.unsettled  # webhooks still to send, jobs queued or in the handler ...
    assert all(
        line.startswith(("webhooks still to send", "job", "failure of"))
        or " job(s) " in line
        or " receipt(s) at sent: the reconciler asks " in line
        for line in report.unsettled
    )
    text = report.render()
    assert f"DID NOT SETTLE: {report.settlement.why}" in text
    assert f"not settled ({len(report.unsettled)}):" in text
    assert "FAILED: did not settle" in text
    assert exit_code(report) == 1


@pytest.mark.slow
def test_an_error_or_ctrl_c_during_the_run_still_gives_a_report(stack: Offline) -> None:
    def broken(_: Offline) -> None:
        raise RuntimeError("the app fell over")

    def interrupted(_: Offline) -> None:
        raise KeyboardInterrupt

    report = run_scenario(stack, 1, Mix(), seed=22, timeout=30, progress=False, send=broken)
    assert report.settlement.why == "the run failed: RuntimeError: the app fell over"
    assert "Redeliver offline: 1 messages" in report.render()
    assert exit_code(report) == 1
    report = run_scenario(stack, 1, Mix(), seed=23, timeout=30, progress=False, send=interrupted)
    assert report.settlement.why == "interrupted (KeyboardInterrupt)"
    assert report.checks  # the table was still read: the invariants over what was stored
    assert exit_code(report) == 130


def test_a_job_is_described_by_its_sids() -> None:
    job = {
        "v": 1,
        "event": {"message_sid": "IMa", "status": "undelivered", "error_code": 30003},
    }
    assert describe_job(json.dumps(job)) == "IMa undelivered 30003"
    follow_up = {"v": 1, "kind": "follow_up", "message_sid": "IMb", "root": "IMa", "attempt": 2}
    assert describe_job(json.dumps(follow_up)) == "follow-up of IMb (root IMa, attempt 2)"
    assert describe_job("not json") == "unparseable job"
    assert schedule_seconds("rate(5 minutes)") == 300
    assert schedule_seconds("rate(1 hour)") == 3600
    assert schedule_seconds("cron(0 * * * ? *)") is None


def test_the_reasons_for_a_job_come_from_the_functions_log(tmp_path: Path) -> None:
    log = tmp_path / "lambda.log"
    lines = [
        {"level": "INFO", "message": "receipt recorded", "message_sid": "IMa"},
        {
            "level": "WARNING",
            "message": "retry job back to the queue",
            "reason": "another worker holds the claim",
            "message_sid": "IMa",
        },
        {"level": "ERROR", "message": "retry job failed", "root": "IMr"},
    ]
    log.write_text("\n".join(json.dumps(line, separators=(",", ":")) for line in lines) + "\n")
    assert log_reasons(log) == {
        "IMa": "retry job back to the queue: another worker holds the claim",
        "IMr": "retry job failed",
    }
