"""Adversarial review of reconciliation: where asking Twilio loses a receipt, records a wrong truth
or queues a failure twice, and where a backlog of stuck receipts is not served fairly.

Twilio's REST API dates are whole seconds (the spec's `2016-03-24T20:37:57Z`; twilio-python
parses them with `%Y-%m-%dT%H:%M:%SZ` and hands back the raw string for anything finer), while a
Conversations webhook's `DateUpdated` carries milliseconds (`2025-01-01T00:00:01.000Z` in
Twilio's event schema; tools/webhook_emitter.py sends them so). The simulator's Receipts endpoint
answers whole seconds, as Twilio does. The same receipt event therefore reaches us with two
different `DateUpdated`s, and the order key must not let the truncated one lose.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from redeliver.adapters.dynamodb.table import pending_shard
from tests.integration.retry_system import T0
from tests.integration.test_reconcile import AFTER, Reconciling
from tests.lambdas import invoke, metric_series
from tools.apigw import http_api_event
from tools.samples import receipt_fields
from tools.stack import TEST_AUTH_TOKEN, DeployedStack
from tools.twilio_sim.simulator import TwilioSimulator


@pytest.fixture
def rec(stack: DeployedStack, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch) -> Reconciling:
    return Reconciling(stack, sim, monkeypatch)


def iso_ms(moment: datetime) -> str:
    """A webhook's DateUpdated: milliseconds, as Twilio sends it."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook(
    rec: Reconciling,
    conversation: str,
    message: str,
    status: str,
    updated: datetime,
    *,
    code: int | None = None,
) -> None:
    """A webhook dated to the millisecond, as Twilio dates them."""
    dates = (iso_ms(T0), iso_ms(updated))
    assert rec.receipt_webhook(conversation, message, status, code, dates=dates) == 200


def test_a_failure_in_the_same_second_as_its_sent_is_recorded_and_queued(rec: Reconciling) -> None:
    """`sent` came by webhook at .300; the `failed` 500 ms later was lost. Twilio's Receipts API
    reports `failed` at the whole second, which reads as *older* than the stored `sent`: the
    failure was history only, never queued, and the receipt left alone at `sent` for good."""
    conversation, message = rec.message()
    webhook(rec, conversation, message, "sent", T0 + timedelta(seconds=5, milliseconds=300))
    rec.sim.set_receipt(
        message, "failed", 30005, updated=T0 + timedelta(seconds=5, milliseconds=800)
    )

    rec.now = T0 + timedelta(seconds=AFTER + 60)
    result = rec.run()
    assert (result["recorded"], result["failures"]) == (1, 1)
    item = rec.receipt_item(message)
    assert item["status"] == "failed"
    assert item["error_code"] == "30005"
    [job] = rec.queued()
    assert job["event"]["status"] == "failed"


def test_a_delivered_in_the_same_second_as_its_sent_moves_the_receipt_on(
    rec: Reconciling,
) -> None:
    """The same truncation kept a `delivered` from replacing the stored `sent`: the receipt was
    looked up until left alone, and its truth stayed `sent`."""
    conversation, message = rec.message()
    webhook(rec, conversation, message, "sent", T0 + timedelta(seconds=5, milliseconds=300))
    rec.sim.set_receipt(message, "delivered", updated=T0 + timedelta(seconds=5, milliseconds=900))
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    assert rec.run()["recorded"] == 1
    assert rec.receipt_item(message)["status"] == "delivered"
    rec.now += timedelta(seconds=AFTER + 60)
    assert rec.run()["messages"] == 0  # out of the index: not asked again


def test_twilio_reporting_the_webhooks_own_event_is_a_duplicate(
    rec: Reconciling, capsys: pytest.CaptureFixture[str]
) -> None:
    """The webhook's `failed` (at .700) is stored and queued; another receipt of the message is
    stuck, so the reconciler asks and Twilio reports that same `failed` at the whole second:
    nothing changes, nothing is queued again, no ReconciledFailure."""
    conversation, message = rec.message(recipients=2)
    failed_at = T0 + timedelta(seconds=20, milliseconds=700)
    webhook(rec, conversation, message, "failed", failed_at, code=30005)
    rec.sim.set_receipt(message, "failed", 30005, updated=failed_at)
    other = rec.sim.receipts[message][1]["sid"]
    sent_at = T0 + timedelta(seconds=5, milliseconds=100)
    rec.sim.set_receipt(message, "sent", receipt=1, updated=sent_at)
    fields = receipt_fields(
        "sent",
        message=message,
        conversation=conversation,
        receipt=other,
        created=iso_ms(T0),
        updated=iso_ms(sent_at),
    )
    fields["ChatServiceSid"] = rec.sim.service_of(conversation)
    assert invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))["statusCode"] == 200
    assert len(rec.queued()) == 1
    before = rec.receipt_item(message)

    rec.now = T0 + timedelta(seconds=AFTER + 60)
    capsys.readouterr()
    assert rec.run()["recorded"] == 0
    emitted = metric_series(capsys.readouterr().out)
    assert ("Receipts", {"change": "duplicate"}) in emitted
    # it was counted as an out-of-order event
    assert ("Receipts", {"change": "older"}) not in emitted
    assert len(rec.queued()) == 1  # the webhook's job only
    after = rec.receipt_item(message)
    assert after["hist_failed"] == before["hist_failed"]
    assert after["write_id"] == before["write_id"]  # not written at all


def test_the_oldest_stuck_receipt_is_looked_up_first_whatever_its_shard(rec: Reconciling) -> None:
    """A run that cannot finish (the function's timeout) resumes next run; which receipts wait is
    decided by age, not by shard number. Shard order let younger receipts in low shards, due
    again every window, go before an older one in a high shard run after run."""
    messages: dict[str, tuple[str, str]] = {}
    while len({pending_shard(m) for m in messages}) < 2 or len(messages) < 6:
        conversation, message = rec.message()
        messages[message] = (conversation, message)
    by_shard = sorted(messages, key=lambda m: int(pending_shard(m)))
    oldest = by_shard[-1]  # in the highest shard of those made
    younger = [m for m in by_shard if int(pending_shard(m)) < int(pending_shard(oldest))][:3]
    assert younger
    webhook(rec, *messages[oldest], "sent", T0 + timedelta(seconds=1))
    for n, message in enumerate(younger):
        webhook(rec, *messages[message], "sent", T0 + timedelta(seconds=10 + n))

    def one_lookup_per_run() -> Any:
        budget = iter([60.0])
        return lambda: next(budget, 0.0)

    looked_up: list[str] = []
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    for _ in range(len(younger) + 1):
        report = rec.reconcile.reconciler.run(one_lookup_per_run(), margin=5)
        assert report.messages == 1
        looked_up += [
            path.split("/Messages/")[1].split("/")[0]
            for _, path in rec.sim.requests
            if path.endswith("/Receipts")
        ][len(looked_up) :]
        rec.now += timedelta(minutes=10)
    assert oldest in looked_up  # shard order: not once in four runs
    assert looked_up[0] == oldest


def test_a_late_webhook_for_a_failure_the_reconciler_found_does_not_queue_it_again(
    rec: Reconciling,
) -> None:
    """The reconciler found the `failed` (Twilio: whole second) and queued it; then the webhook
    for that same event arrives after all (replayed from the spill queue, or just late), with its
    milliseconds. It is the same event: one job, one retry."""
    conversation, message = rec.message()
    webhook(rec, conversation, message, "sent", T0 + timedelta(seconds=5, milliseconds=300))
    failed_at = T0 + timedelta(seconds=20, milliseconds=700)
    rec.sim.set_receipt(message, "undelivered", 30003, updated=failed_at)
    rec.now = T0 + timedelta(seconds=AFTER + 60)
    assert rec.run()["failures"] == 1
    webhook(rec, conversation, message, "undelivered", failed_at, code=30003)
    rec.drain()
    # Two jobs (below), but the first is superseded by the second at the worker's claim: one retry.
    assert len(rec.created(conversation)) == 1


def test_a_hung_write_leaves_ingest_time_to_spill(ingest: Any) -> None:
    from tools.stack import load_template

    timeout = load_template()["Resources"]["IngestFunction"]["Properties"]["Timeout"]
    config = ingest.ingest.recorder._receipts._db.meta.config
    write = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout)
    spill = ingest.ingest._spill._sqs.meta.config
    one_send = spill.connect_timeout + spill.read_timeout  # the spill's first try, at least
    assert write + one_send < timeout


def test_ingest_counts_its_tries_with_the_request_time_its_clients_allow(ingest: Any) -> None:
    """redeliver.usecases.ingest budgets each try at REQUEST_SECONDS: its clients must make exactly
    one request per call, of at most that long (botocore's own retries would not see the
    deadline)."""
    from redeliver.usecases.ingest import REQUEST_SECONDS

    for client in (
        ingest.ingest.recorder._receipts._db,
        ingest.ingest._spill._sqs,
        ingest.ingest._queue._sqs,
    ):
        config = client.meta.config
        assert config.retries["total_max_attempts"] == 1
        assert config.connect_timeout + config.read_timeout == pytest.approx(REQUEST_SECONDS)
