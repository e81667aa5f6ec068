"""Adversarial review of ingest, the outbox and its sweeper: AWS as it is, not as moto is.

Each test here proved a way a signed receipt could be lost, stored wrongly or queued twice in a
way that matters, before the fix beside it. Where moto cannot show AWS's behaviour (a GSI read
that lags the table, a write whose answer is lost after DynamoDB applied it), the test makes that
behaviour explicitly and says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from redeliver.adapters.dynamodb.outbox import Outbox, PendingFailure
from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.table import (
    PENDING_AT,
    PENDING_SHARD,
    message_pk,
    pending_shard,
    receipt_sk,
)
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.domain.receipts import DeliveryEvent, parse_delivery_event
from redeliver.usecases.sweep import sweep
from tests.integration.resources import AnswerLost, Resources
from tools.samples import receipt_fields, sid

NOW = 1_800_000_000
GRACE = 120


@pytest.fixture
def queue(resources: Resources) -> RetryQueue:
    return RetryQueue(boto3.client("sqs"), resources.queue_url)


def failure(n: object) -> DeliveryEvent:
    return parse_delivery_event(
        receipt_fields("undelivered", message=n, receipt=n, error_code=30003)
    )


def queued_messages(resources: Resources) -> list[str]:
    return sorted(job["event"]["message_sid"] for job in resources.queued())


# -- the sweeper --------------------------------------------------------------------------------


def test_one_unreadable_mark_does_not_stop_the_sweep(
    receipts: Receipts, outbox: Outbox, queue: RetryQueue, resources: Resources
) -> None:
    """A marked item the sweeper cannot rebuild a job from (written by an older version, edited
    by hand) used to raise out of the index Query: every failure after it in its shard and every
    later shard was never queued again, on every run, until the item's TTL."""
    good = [failure(n) for n in range(40)]
    for event in good:
        receipts.record(event, now=NOW - GRACE - 1)
    bad_message = sid("IM", "unreadable")
    resources.dynamodb.put_item(
        TableName=resources.table,
        Item={
            "pk": {"S": message_pk(bad_message)},
            "sk": {"S": receipt_sk(sid("DY", "unreadable"))},
            "status": {"S": "undelivered"},
            "order_key": {"N": "1"},
            "date_updated": {"S": "yesterday"},  # no date: the job cannot be rebuilt
            "date_created": {"S": "2026-11-27T09:59:58.000Z"},
            "conversation_sid": {"S": sid("CH", 1)},
            PENDING_SHARD: {"S": "0"},  # the first shard queried
            PENDING_AT: {"N": str(NOW - 10 * GRACE)},  # first in its shard
        },
    )
    assert any(pending_shard(e.message_sid) == "0" for e in good)

    assert sweep(outbox, queue, GRACE, now=NOW) == len(good)
    assert queued_messages(resources) == sorted(e.message_sid for e in good)


def test_a_mark_the_worker_cleared_is_neither_requeued_nor_set_again(
    receipts: Receipts, outbox: Outbox, queue: RetryQueue, resources: Resources
) -> None:
    """The index is eventually consistent (and the worker races the sweeper): the sweeper can
    read a mark the worker has just cleared. It used to queue the job again and, worse, set the
    mark again (its condition checked only that the receipt was unchanged), so the alarm that
    means "an enqueue was lost" fired for a job that had reached the worker. moto's GSI is
    consistent: the stale read is made here by clearing the mark after the index was read."""
    event = failure("taken")
    receipts.record(event, now=NOW - GRACE - 1)

    class LaggingIndex(Outbox):
        def pending_failures(self, older_than: int) -> Iterator[PendingFailure]:
            seen = list(super().pending_failures(older_than))
            assert [p.event for p in seen] == [event]
            assert outbox.clear_pending(event)  # the worker takes the job meanwhile
            yield from seen

    lagging = LaggingIndex(resources.dynamodb, resources.table)
    assert sweep(lagging, queue, GRACE, now=NOW) == 0
    assert queued_messages(resources) == []
    assert list(outbox.pending_failures(older_than=NOW + 3600)) == []


def test_a_send_sqs_refuses_does_not_stop_the_sweep_and_is_swept_next_run(
    receipts: Receipts, outbox: Outbox, queue: RetryQueue, resources: Resources
) -> None:
    """SQS can refuse one SendMessage (throttled, a 5xx) and take the next: the run goes on, and
    the refused one keeps a mark that the next run (a grace period later) finds."""
    events = [failure(n) for n in range(12)]
    for event in events:
        receipts.record(event, now=NOW - GRACE - 1)
    refused = events[0].message_sid

    class Flaky(RetryQueue):
        def send(self, job: object, delay_seconds: int = 0) -> str:
            if getattr(getattr(job, "event", None), "message_sid", None) == refused:
                raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessage")
            return queue.send(job, delay_seconds)  # type: ignore[arg-type]

    flaky = Flaky(boto3.client("sqs"), resources.queue_url)
    assert sweep(outbox, flaky, GRACE, now=NOW) == len(events) - 1
    assert refused not in queued_messages(resources)
    for event in events[1:]:  # the worker takes the jobs that were queued
        assert outbox.clear_pending(event)
    assert sweep(outbox, queue, GRACE, now=NOW + GRACE) == 1


# -- ingest's one write -------------------------------------------------------------------------


@pytest.mark.parametrize("before", [None, "sent"])
def test_a_failure_whose_write_answer_was_lost_is_still_queued_at_once(
    resources: Resources, before: str | None
) -> None:
    """The retried write meets its own first try: the condition fails and the item returned is
    the failure itself, which used to be classified as a duplicate: not queued, so the retry
    waited for the sweeper's grace period and `SweptFailures` alarmed for a lost enqueue."""
    receipts = Receipts(resources.dynamodb, resources.table)
    if before:
        receipts.record(
            parse_delivery_event(
                receipt_fields(
                    before, message="lost", receipt="lost", updated="2026-11-27T09:59:59Z"
                )
            ),
            now=NOW,
        )
    lossy = AnswerLost(resources.dynamodb)
    event = failure("lost")
    transition = Receipts(lossy, resources.table).record(event, now=NOW)  # type: ignore[arg-type]
    assert lossy.lost == 1
    assert transition.enqueue
    # A true duplicate (Twilio's own resend of the same event) is still one.
    assert not receipts.record(event, now=NOW).enqueue


# -- the signature's token after a rotation ------------------------------------------------------


def test_a_forged_request_does_not_delay_a_rotated_token() -> None:
    """Twilio signs with the new auth token the moment it is promoted. A forged request seconds
    before the rotation spends the container's one re-read a minute, so without the secondary
    token every signed receipt of the next minute would be refused (403) and, Twilio not
    resending, lost. The documented rotation puts the new token in the secret as
    `secondary_auth_token` before promoting it: no re-read is needed at all."""
    from twilio.request_validator import RequestValidator

    from redeliver.adapters.twilio.credentials import CredentialSource, TwilioCredentials
    from redeliver.adapters.twilio.signature import FormFields, SignatureVerifier

    class Rotating(CredentialSource):
        """Step 1 of the rotation: the new token is in the secret as the secondary, and cached."""

        def __init__(self) -> None:
            super().__init__("arn:unused")
            self.reads = 0

        def get(self, refresh: bool = False) -> TwilioCredentials:
            self.reads += 1 if refresh else 0
            return TwilioCredentials(
                sid("AC", "account"), "old-token", secondary_auth_token="new-token"
            )

    url = "https://hooks.example.com/twilio/delivery-receipts"
    fields = receipt_fields("delivered")
    form = FormFields({k: [v] for k, v in fields.items()})
    clock = [1000.0]
    secret = Rotating()
    verifier = SignatureVerifier(secret, clock=lambda: clock[0])

    assert not verifier.verify(url, form, "forged").valid  # spends the minute's re-read
    assert secret.reads == 1
    clock[0] += 5  # step 2: the secondary is promoted in Twilio, which signs with it from now on
    signed = RequestValidator("new-token").compute_signature(url, fields)
    assert verifier.verify(url, form, signed).valid
    old = RequestValidator("old-token").compute_signature(url, fields)
    assert verifier.verify(url, form, old).valid  # a webhook signed just before, still in flight
