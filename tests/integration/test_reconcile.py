"""Receipts stuck at `sent` are found without a scan, looked up in Twilio's Receipts API (the
simulator) once per window, and what Twilio reports is recorded through the webhook's own path: a
failure whose webhook was lost is retried like any other.

The template is deployed into moto; ingest, reconcile and retry are the real handlers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from redeliver import observability
from redeliver.adapters.dynamodb.reconciliation import STUCK_PROJECTION
from redeliver.adapters.dynamodb.table import (
    LOOKUPS,
    STUCK_INDEX,
    STUCK_SHARD,
    STUCK_SINCE,
)
from redeliver_cli import main as cli
from tests.integration.retry_system import T0, RetrySystem
from tests.integration.test_ingest import secrets_manager_down
from tests.integration.test_store import index_write_units
from tests.lambdas import invoke, load_function, metric_names, metric_series
from tools.apigw import http_api_event
from tools.lambdas import FakeContext, emitted_metrics
from tools.samples import receipt_fields, sid
from tools.stack import TEST_AUTH_TOKEN, DeployedStack, deploy
from tools.twilio_sim.faults import Fault
from tools.twilio_sim.simulator import TwilioSimulator

AFTER = 30 * 60  # ReconcileAfterMinutes' default


class Reconciling(RetrySystem):
    """RetrySystem plus the reconciler, both on the test's clock."""

    def __init__(
        self, stack: DeployedStack, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        super().__init__(stack, sim, monkeypatch)
        env = {
            **stack.environment("ReconcileFunction"),
            "TWILIO_CONVERSATIONS_URL": sim.url,
            "TWILIO_TIMEOUT_SECONDS": "2",
        }
        self.reconcile = load_function("reconcile", env, monkeypatch)
        self.reconcile.reconciler._clock = lambda: self.now.timestamp()  # noqa: PLW0108

    def receipt_webhook(
        self,
        conversation: str,
        message: str,
        status: str,
        code: int | None = None,
        *,
        dates: tuple[str, str] | None = None,
        **at: int,
    ) -> int:
        """The webhook for the simulator's own receipt (its DY SID) of `message`, dated `after`
        seconds past T0, or with the (created, updated) `dates` given as Twilio would send them."""
        [receipt, *_] = self.sim.receipts[message]
        created, updated = dates or (_iso(T0), _iso(T0 + timedelta(seconds=at.get("after", 5))))
        fields = receipt_fields(
            status,
            message=message,
            conversation=conversation,
            receipt=receipt["sid"],
            error_code=code,
            created=created,
            updated=updated,
        )
        fields["ChatServiceSid"] = self.sim.service_of(conversation)
        status_code: int = invoke(self.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))[
            "statusCode"
        ]
        return status_code

    def run(self, remaining_ms: int = 300_000) -> dict[str, Any]:
        result: dict[str, Any] = self.reconcile.lambda_handler(
            {}, FakeContext(remaining_ms=remaining_ms)
        )
        return result

    def lookups(self) -> int:
        return sum(1 for _, path in self.sim.requests if path.endswith("/Receipts"))

    def receipt_item(self, message: str) -> dict[str, Any]:
        [receipt, *_] = self.sim.receipts[message]
        item = self.item(message, f"RCPT#{receipt['sid']}")
        assert item is not None
        return item


@pytest.fixture
def rec(stack: DeployedStack, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch) -> Reconciling:
    return Reconciling(stack, sim, monkeypatch)


def stuck_entries(rec: Reconciling) -> list[dict[str, Any]]:
    items = rec.dynamodb.scan(TableName=rec.table, IndexName=STUCK_INDEX)["Items"]
    return [{k: next(iter(v.values())) for k, v in i.items()} for i in items]


def test_a_failure_whose_webhook_was_lost_is_found_recorded_and_retried(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    assert rec.receipt_webhook(conversation, message, "sent") == 200
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    # ... and the `undelivered` webhook never comes.

    rec.now = T0 + timedelta(seconds=AFTER - 60)  # not stuck long enough yet
    assert rec.run()["messages"] == 0
    assert rec.lookups() == 0

    rec.now = T0 + timedelta(seconds=AFTER + 60)
    capsys.readouterr()
    assert rec.run() == {
        "messages": 1,
        "recorded": 1,
        "failures": 1,
        "left_alone": 0,
        "errors": 0,
        "refused": 0,
        "skipped": 0,
        "tracked_received": 0,
        "tracked_reconciled": 0,
    }
    assert rec.lookups() == 1
    printed = capsys.readouterr().out
    emitted = metric_names(printed)
    assert {"ReconciledFailures", "ReconciledReceipts", "NewFailures"} <= set(emitted)
    series = metric_series(printed)
    assert ("Receipts", {}) not in series  # only webhooks that reached us: NoReceiptsAlarm's
    assert ("Receipts", {"change": "latest"}) in series  # but every recorded receipt, by change
    assert ("Receipts", {"status": "undelivered"}) in series  # and the funnel, by status
    item = rec.receipt_item(message)
    assert item["status"] == "undelivered"
    assert item["error_code"] == "30003"
    assert "retry_pending_at" in item  # the outbox mark, as the webhook path sets it
    assert STUCK_SINCE not in item  # out of the reconciliation index
    [job] = rec.queued()
    assert job["event"]["message_sid"] == message

    rec.poll()  # the retry worker treats it as it would a webhook's failure
    [retry] = rec.created(conversation)
    assert retry["sid"] != message
    assert rec.run()["messages"] == 0  # nothing is stuck any more


def test_a_run_that_finds_over_a_hundred_lost_failures_counts_each_in_documents_cloudwatch_reads(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    """An outage that lost webhooks is when ReconciledFailuresAlarm matters, and when one run
    records the most: one series counted 101 times is over EMF's 100 values a metric, a document
    CloudWatch refuses whole (the parser refuses it too). Every one must be counted."""
    lost = 101
    for _ in range(lost):
        conversation, message = rec.message()
        assert rec.receipt_webhook(conversation, message, "sent") == 200
        rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    capsys.readouterr()
    assert rec.run(remaining_ms=900_000)["failures"] == lost
    emitted = list(emitted_metrics(capsys.readouterr().out))
    totals = {
        name: sum(v for n, d, v in emitted if n == name and set(d) == {"service"})
        for name in ("ReconciledFailures", "NewFailures")
    }
    assert totals == {"ReconciledFailures": lost, "NewFailures": lost}


def test_a_receipt_with_nothing_new_is_looked_up_once_per_window_then_left_alone(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    assert rec.receipt_webhook(conversation, message, "sent") == 200
    [entry] = stuck_entries(rec)
    assert entry[STUCK_SINCE] == str(int((T0 + timedelta(seconds=5)).timestamp()))
    for lookup in range(1, 4):
        rec.now = T0 + timedelta(seconds=lookup * (AFTER + 10))
        assert rec.run()["messages"] == 1
        assert rec.run()["messages"] == 0  # again in the same window: not asked again
        assert rec.lookups() == lookup
    capsys.readouterr()
    assert stuck_entries(rec) == []  # left alone after the third lookup
    assert rec.receipt_item(message)[LOOKUPS] == "3"
    rec.now += timedelta(days=1)
    assert rec.run()["messages"] == 0
    assert rec.lookups() == 3


def test_a_left_alone_count_is_emitted_and_a_newer_webhook_starts_again(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    capsys.readouterr()
    for lookup in range(1, 4):
        rec.now = T0 + timedelta(seconds=lookup * (AFTER + 10))
        rec.run()
    assert "ReconcileLeftAlone" in metric_names(capsys.readouterr().out)
    assert rec.receipt_webhook(conversation, message, "delivered", after=50) == 200
    item = rec.receipt_item(message)
    assert item["status"] == "delivered"
    assert LOOKUPS not in item


def test_one_twilio_call_covers_every_stuck_receipt_of_a_message(rec: Reconciling) -> None:
    conversation, message = rec.message(recipients=3)
    for receipt in rec.sim.receipts[message]:
        fields = receipt_fields(
            "sent",
            message=message,
            conversation=conversation,
            receipt=receipt["sid"],
            created=_iso(T0),
            updated=_iso(T0 + timedelta(seconds=5)),
        )
        fields["ChatServiceSid"] = rec.sim.service_of(conversation)
        assert (
            invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))["statusCode"] == 200
        )
    assert len(stuck_entries(rec)) == 3
    rec.sim.set_receipt(message, "delivered", receipt=1, updated=T0 + timedelta(seconds=30))
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    result = rec.run()
    assert (result["messages"], result["recorded"], result["failures"]) == (1, 1, 0)
    assert rec.lookups() == 1
    assert len(stuck_entries(rec)) == 2  # the delivered one left the index with its write
    assert rec.queued() == []


def test_a_receipt_never_seen_by_webhook_is_recorded_too(rec: Reconciling) -> None:
    """Of a message with two recipients only one webhook came: the other receipt is new."""
    conversation, message = rec.message(recipients=2)
    rec.receipt_webhook(conversation, message, "sent")
    rec.sim.set_receipt(message, "failed", 30005, receipt=1, updated=T0 + timedelta(seconds=9))
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    result = rec.run()
    assert (result["recorded"], result["failures"]) == (1, 1)
    other = rec.sim.receipts[message][1]["sid"]
    item = rec.item(message, f"RCPT#{other}")
    assert item is not None
    assert item["status"] == "failed"


def test_a_transient_twilio_error_is_asked_again_next_window_without_counting(
    rec: Reconciling,
) -> None:
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    rec.sim.fail_next("GET", Fault.throttled())
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    assert rec.run()["errors"] == 1
    assert rec.run()["messages"] == 0  # not again in this window
    assert LOOKUPS not in rec.receipt_item(message) or rec.receipt_item(message)[LOOKUPS] == "0"
    rec.sim.set_receipt(message, "delivered", updated=T0 + timedelta(seconds=60))
    rec.now += timedelta(seconds=AFTER + 1)
    assert rec.run()["recorded"] == 1
    assert rec.receipt_item(message)["status"] == "delivered"


@pytest.mark.parametrize(
    "fault",
    [Fault(status=403, code=20003), Fault(status=401, code=20003), Fault(status=403, code=20403)],
    ids=["403-20003", "401", "403"],
)
def test_a_refused_lookup_is_counted_and_alarmed_never_towards_leaving_a_receipt_alone(
    rec: Reconciling, capsys: pytest.CaptureFixture[str], fault: Fault
) -> None:
    """A restricted API key (401/403, 20003) is refused every lookup: that says nothing about
    the message, so no number of runs leaves the receipt alone, and each refusal is counted
    `ReconcileRefused` (ReconcileRefusedAlarm) beside `ReconcileErrors`."""
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    capsys.readouterr()
    runs = 5
    for lookup in range(1, runs + 1):
        rec.sim.fail_next("GET", fault)
        rec.now = T0 + timedelta(seconds=lookup * (AFTER + 10))
        result = rec.run()
        assert (result["messages"], result["errors"], result["left_alone"]) == (1, 1, 0)
    printed = metric_series(capsys.readouterr().out)
    assert printed.count(("ReconcileRefused", {})) == runs
    assert ("ReconcileLeftAlone", {}) in printed  # counted 0 each run, never more
    assert len(stuck_entries(rec)) == 1  # still asked about
    assert rec.receipt_item(message).get(LOOKUPS, "0") == "0"  # none counted
    rec.sim.set_receipt(message, "failed", 30003, updated=rec.now)
    rec.now += timedelta(seconds=AFTER + 10)
    assert rec.run()["failures"] == 1  # once the key is fixed, the failure is found


def test_a_secrets_manager_outage_after_a_401_keeps_the_last_good_credentials(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 401 makes the gateway read the secret again (a rotation); if Secrets Manager is down
    then, the reconciler goes on with the credentials it read last (StaleCredentials), as the
    retry worker does through the same CredentialSource, instead of failing its runs."""
    first, stuck = rec.message()
    rec.receipt_webhook(first, stuck, "sent")
    rec.now = T0 + timedelta(seconds=AFTER + 10)
    rec.run()  # reads the secret, makes the Twilio client
    rec.sim.set_receipt(stuck, "failed", 30003, updated=rec.now)
    rec.sim.fail_next("GET", Fault(status=401, code=20003))
    rec.now += timedelta(seconds=AFTER + 10)
    assert rec.run()["errors"] == 1  # the 401: the client is dropped, the secret to be re-read
    secrets_manager_down([])
    capsys.readouterr()
    rec.now += timedelta(seconds=AFTER + 10)
    assert rec.run()["failures"] == 1
    assert "StaleCredentials" in metric_names(capsys.readouterr().out)


def test_the_index_is_sparse_and_follows_the_single_write(rec: Reconciling) -> None:
    """Set by the `sent` write, removed by the `delivered` one, never by a failure; no other call
    than ingest's one UpdateItem (counted on its client)."""
    conversation, message = rec.message()
    calls: list[str] = []
    rec.ingest.ingest.recorder._receipts._db.meta.events.register(
        "before-call.*.*", lambda model, **_: calls.append(model.name)
    )
    rec.receipt_webhook(conversation, message, "sent")
    assert calls == ["UpdateItem"]
    item = rec.receipt_item(message)
    assert item[STUCK_SHARD] == item.get("pending_shard", item[STUCK_SHARD])
    assert len(stuck_entries(rec)) == 1
    rec.receipt_webhook(conversation, message, "delivered", after=9)
    assert calls == ["UpdateItem"] * 2
    assert stuck_entries(rec) == []
    other_conversation, failed = rec.message()
    rec.receipt_webhook(other_conversation, failed, "undelivered", 30003)
    assert stuck_entries(rec) == []


def test_an_index_entry_is_one_write_unit(rec: Reconciling) -> None:
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    raw = rec.dynamodb.get_item(
        TableName=rec.table,
        Key={
            "pk": {"S": f"MSG#{message}"},
            "sk": {"S": f"RCPT#{rec.sim.receipts[message][0]['sid']}"},
        },
    )["Item"]
    raw[LOOKUPS] = {"N": "100"}  # the most it can hold
    size, units = index_write_units(raw, {"pk", "sk", STUCK_SHARD, STUCK_SINCE, *STUCK_PROJECTION})
    assert units == 1, size


def test_a_run_stops_before_the_function_times_out(rec: Reconciling) -> None:
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    assert rec.run(remaining_ms=1_000)["skipped"] == 1
    assert rec.lookups() == 0
    assert rec.run()["messages"] == 1  # the next run finds it again


@pytest.mark.slow
def test_reconcile_after_minutes_zero_deploys_no_reconciler_and_writes_no_index(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = deploy("off", {"ReconcileAfterMinutes": "0"})
    assert "ReconcileFunction" not in stack.environments
    ingest = load_function("ingest", stack.environment("IngestFunction"), monkeypatch)
    event = http_api_event(receipt_fields("sent", message="off"), token=TEST_AUTH_TOKEN)
    assert invoke(ingest, event)["statusCode"] == 200
    dynamodb = boto3.client("dynamodb")
    table = stack.outputs["ReceiptsTableName"]
    [item] = dynamodb.scan(TableName=table)["Items"]
    assert STUCK_SINCE not in item
    assert dynamodb.scan(TableName=table, IndexName=STUCK_INDEX)["Items"] == []


def _iso(moment: Any) -> str:
    text: str = moment.isoformat().replace("+00:00", "Z")
    return text


# -- the operator command ------------------------------------------------------------------------


def cli_run(capsys: pytest.CaptureFixture[str], rec: Reconciling, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["--stack", rec.stack.name, *argv, "--twilio-url", rec.sim.url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_reconcile_dry_run_says_what_it_would_record_and_changes_nothing(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    code, out = cli_run(capsys, rec, "reconcile", message, "--dry-run")
    assert code == 0, out
    receipt = rec.sim.receipts[message][0]["sid"]
    assert f"{receipt}: sent -> undelivered 30003 at 2026-11-27T10:00:20Z: would record, " in out
    assert "1 failure(s) would be queued for a retry (dry run: nothing changed)" in out
    assert rec.receipt_item(message)["status"] == "sent"
    assert rec.queued() == []

    level = observability.logger.log_level
    code, out = cli_run(capsys, rec, "reconcile", message)
    assert code == 0, out
    assert "recorded, queued for a retry" in out
    # the command quiets the handlers' log and metrics for itself only: nothing is left behind
    assert observability.logger.log_level == level
    assert observability.metrics.documents() == []
    assert rec.receipt_item(message)["status"] == "undelivered"
    [job] = rec.queued()
    assert job["event"]["message_sid"] == message
    code, out = cli_run(capsys, rec, "reconcile", message)
    assert "undelivered 30003 at 2026-11-27T10:00:20Z: nothing new" in out


def test_cli_reconcile_every_receipt_stuck_longer_than_a_duration(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    old_conversation, old = rec.message()
    new_conversation, new = rec.message()
    for conversation, message, age in ((old_conversation, old, 3), (new_conversation, new, 0.5)):
        fields = receipt_fields(
            "sent",
            message=message,
            conversation=conversation,
            receipt=rec.sim.receipts[message][0]["sid"],
            created=_iso(now - timedelta(hours=age)),
            updated=_iso(now - timedelta(hours=age)),
        )
        fields["ChatServiceSid"] = rec.sim.service_of(conversation)
        invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
        rec.sim.set_receipt(message, "delivered", updated=now)
    code, out = cli_run(capsys, rec, "reconcile", "--stuck-for", "2h")
    assert code == 0, out
    assert old in out
    assert new not in out
    assert "1 message(s) looked up, 1 receipt(s) recorded, 0 failure(s) queued" in out
    assert rec.receipt_item(old)["status"] == "delivered"
    assert rec.receipt_item(new)["status"] == "sent"


def test_cli_reconcile_says_what_is_wrong(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli_run(capsys, rec, "reconcile", "IM" + "0" * 32)
    assert (code, "its conversation is not known here" in out) == (1, True)
    # usage errors: 2, as argparse's own (every command's: tests/cli/test_exit_codes.py)
    for argv, said in (
        (["reconcile"], "give message SIDs or --stuck-for"),
        (["reconcile", "SM1", "--dry-run"], "is not a message SID"),
        (["reconcile", "--stuck-for", "soon"], "is not a duration"),
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            cli.main(["--stack", rec.stack.name, *argv])
        assert (exit_.value.code, said in capsys.readouterr().err) == (2, True)


def test_cli_reconcile_finds_a_message_whose_receipt_holds_only_a_status_the_spec_does_not_name(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receipt whose only event so far is a status Twilio's spec does not name is kept in
    history only, with no status; it must still say where its message lives (the webhook said
    it): `redeliver reconcile IM…` asks Twilio there and records what it reports, rather than
    failing with a KeyError (and `send-receipt` invents no conversation for it)."""
    conversation, message = rec.message()
    assert rec.receipt_webhook(conversation, message, "delivered_to_carrier") == 200
    item = rec.receipt_item(message)
    assert "status" not in item
    assert (item.get("conversation_sid"), item.get("chat_service_sid")) == (
        conversation,
        rec.sim.service_of(conversation),
    )
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    code, out = cli_run(capsys, rec, "reconcile", message)
    assert code == 0, out
    assert f"{message} (conversation {conversation})" in out
    assert "1 receipt(s) recorded, 1 failure(s) queued for a retry" in out
    assert rec.receipt_item(message)["status"] == "undelivered"


def test_cli_reconcile_names_a_message_twilio_does_not_know(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    """A message the table knows but Twilio does not (deleted, or another account's): said
    as what it means, beside the others' answers, and the command exits 1."""
    conversation, known = rec.message()
    rec.receipt_webhook(conversation, known, "sent")
    unknown = sid("IM", "never sent through this account")
    fields = receipt_fields("sent", message=unknown, conversation=conversation, receipt=unknown)
    fields["ChatServiceSid"] = rec.sim.service_of(conversation)
    assert invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))["statusCode"] == 200
    code, out = cli_run(capsys, rec, "reconcile", unknown, known, "--dry-run")
    assert code == 1, out
    assert "TwilioError" not in out
    assert (
        f"{unknown} (conversation {conversation})\n"
        f"  Twilio does not know this message in Conversation Service "
        f"{fields['ChatServiceSid']}, conversation {conversation}, of the account the stack's "
        "credentials are for (HTTP 404, code 20404): it was deleted, or it belongs to another "
        "service or account"
    ) in out
    assert f"{known} (conversation {conversation})\n  " in out  # the other is still asked
    assert "2 message(s) looked up" in out
    assert f"error: Twilio could not answer for 1 of 2 message(s): {unknown}" in out


def test_cli_reconcile_keeps_receipts_for_the_stacks_retention(
    aws: None,
    sim: TwilioSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A receipt the command records expires when the functions' own would: after the stack's
    ReceiptRetentionDays (7 here), not the store's default of 30 days."""
    rec = Reconciling(deploy("week", {"ReceiptRetentionDays": "7"}), sim, monkeypatch)
    conversation, message = rec.message()
    rec.receipt_webhook(conversation, message, "sent")
    rec.sim.set_receipt(message, "undelivered", 30003, updated=T0 + timedelta(seconds=20))
    before = int(time.time())
    code, out = cli_run(capsys, rec, "reconcile", message)
    assert (code, "recorded, queued for a retry" in out) == (0, True), out
    item = rec.receipt_item(message)
    assert item["status"] == "undelivered"
    week = 7 * 86_400
    assert before + week <= int(item["expires_at"]) <= int(time.time()) + week
