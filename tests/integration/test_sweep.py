"""The outbox sweeper against the template deployed into moto: the sharded `RetryPendingByShard`
index.

Ingest marks a failure in the same single write that stores it; the sweeper Queries each shard
for marks older than the grace period and rebuilds the retry job from what the index projects.
moto keeps a GSI's projection (INCLUDE returns only the keys and NonKeyAttributes) but not its
partitions or throttling: how evenly the shards spread is checked on the hash itself.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from redeliver.adapters.dynamodb.outbox import Outbox
from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.table import (
    PENDING_AT,
    PENDING_INDEX,
    PENDING_SHARD,
    SHARDS,
    pending_shard,
)
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.domain.jobs import RetryJob
from redeliver.domain.receipts import DeliveryEvent, parse_delivery_event
from redeliver.usecases import sweep as sweep_module
from redeliver.usecases.sweep import sweep
from tests.integration.resources import Resources
from tools.samples import receipt_fields, sid

LAYER = Path(__file__).resolve().parents[2] / "layers" / "common"
NOW = 1_800_000_000
GRACE = 120


def failure(n: object, status: str = "undelivered") -> DeliveryEvent:
    return parse_delivery_event(receipt_fields(status, message=n, receipt=n, error_code=30003))


def test_the_sweeper_finds_old_marks_in_every_shard_and_skips_young_ones(
    receipts: Receipts, outbox: Outbox, resources: Resources
) -> None:
    old = [failure(n) for n in range(48)]
    young = [failure(f"young-{n}") for n in range(8)]
    for event in old:
        receipts.record(event, now=NOW - GRACE - 1)
    for event in young:
        receipts.record(event, now=NOW - GRACE + 1)
    assert len({pending_shard(e.message_sid) for e in old}) > SHARDS // 2

    queue = RetryQueue(boto3.client("sqs"), resources.queue_url)
    assert sweep(outbox, queue, GRACE, now=NOW) == len(old)

    jobs = [job["event"] for job in resources.queued()]
    # The job rebuilt from the index is the event ingest stored, field for field.
    assert sorted(jobs, key=lambda e: e["message_sid"]) == sorted(
        (e.to_dict() for e in old), key=lambda e: e["message_sid"]
    )
    # Re-queued marks restart their grace period; the young ones are still waiting theirs.
    assert sweep(outbox, queue, GRACE, now=NOW) == 0
    assert sweep(outbox, queue, GRACE, now=NOW + 2) == len(young)


def test_ingest_sets_the_shard_in_its_one_write_and_a_delivery_takes_the_mark_out(
    receipts: Receipts, outbox: Outbox, resources: Resources
) -> None:
    calls: list[str] = []
    resources.dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    event = failure("one")
    receipts.record(event, now=NOW)
    assert calls == ["UpdateItem"]  # no extra call on the hot path
    [item] = resources.items()
    assert item[PENDING_SHARD] == {"S": pending_shard(event.message_sid)}
    assert item[PENDING_AT] == {"N": str(NOW)}
    assert len(indexed(resources)) == 1

    later = parse_delivery_event(
        receipt_fields("delivered", message="one", receipt="one", updated="2026-11-27T10:00:09Z")
    )
    receipts.record(later, now=NOW + 5)
    assert indexed(resources) == []  # sparse: without its sort key the item leaves the index
    assert list(outbox.pending_failures(older_than=NOW + 3600)) == []


def test_a_failure_storm_spreads_evenly_over_the_shards() -> None:
    """What makes the index's write rate scale: no shard gets much more than its share."""
    per_shard = collections.Counter(pending_shard(sid("IM", n)) for n in range(16_000))
    assert set(per_shard) == {str(s) for s in range(SHARDS)}
    share = 16_000 / SHARDS
    assert max(per_shard.values()) < 1.1 * share


def test_a_message_has_the_same_shard_in_every_process() -> None:
    """Ingest and the sweeper run in different processes: no salted `hash()`."""
    sids = [sid("IM", n) for n in range(32)]
    script = "import sys; from redeliver.adapters.dynamodb.table import pending_shard; " + (
        "print(' '.join(pending_shard(s) for s in sys.argv[1:]))"
    )
    for seed in ("1", "2"):
        answer = subprocess.run(
            [sys.executable, "-c", script, *sids],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(LAYER)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert answer.stdout.split() == [pending_shard(s) for s in sids], seed


def indexed(resources: Resources) -> list[dict[str, object]]:
    items: list[dict[str, object]] = resources.dynamodb.scan(
        TableName=resources.table, IndexName=PENDING_INDEX
    )["Items"]
    return items


def depth(resources: Resources) -> int:
    """Messages on RetryQueue, waiting or in flight. moto's counts are exact; SQS's are
    approximate (eventually consistent, about a minute), which the sweeper allows for."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = resources.sqs.get_queue_attributes(
        QueueUrl=resources.queue_url, AttributeNames=names
    )
    return sum(int(attributes["Attributes"][n]) for n in names)


def test_a_job_only_waiting_in_the_queue_is_not_copied_on_every_sweep_nor_counted_lost(
    receipts: Receipts, outbox: Outbox, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog longer than the grace (RetryMaxConcurrency reached, the retry function down):
    ingest's job waits in RetryQueue, its mark not taken yet. A sweep cannot tell it from a lost
    enqueue, but it sees the queue is not empty: it queues one copy (in case this one was lost
    while others wait) and looks again only an hour later, and counts none of it as a lost
    enqueue (`SweptFailures`, OutboxSweptAlarm)."""
    counted: collections.Counter[str] = collections.Counter()
    monkeypatch.setattr(sweep_module, "count", lambda name, value=1: counted.update({name: value}))
    queue = RetryQueue(boto3.client("sqs"), resources.queue_url)
    event = failure("waiting")
    receipts.record(event, now=NOW)
    queue.send(RetryJob(event))  # ingest's enqueue, which worked: the job is waiting
    for run in range(1, 13):  # an hour of five-minute sweeps
        sweep(outbox, queue, GRACE, now=NOW + run * 300)
    assert depth(resources) == 2  # ingest's job and one copy, not one per sweep
    assert counted["SweptFailures"] == 0
    assert counted["SweptBehindBacklog"] == 1


def test_a_lost_enqueue_is_still_swept_and_counted_when_the_queue_is_empty(
    receipts: Receipts, outbox: Outbox, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing waits in the queue, so a mark past its grace cannot be a job waiting: its enqueue
    was lost. It is queued and counted, and its copy, taken by the worker, ends it."""
    counted: collections.Counter[str] = collections.Counter()
    monkeypatch.setattr(sweep_module, "count", lambda name, value=1: counted.update({name: value}))
    queue = RetryQueue(boto3.client("sqs"), resources.queue_url)
    event = failure("lost")
    receipts.record(event, now=NOW)  # and the process dies before the SQS send
    assert sweep(outbox, queue, GRACE, now=NOW + 300) == 1
    assert counted["SweptFailures"] == 1
    [job] = resources.queued()
    assert job["event"]["message_sid"] == event.message_sid
    assert outbox.clear_pending(event)  # the worker takes it
    assert sweep(outbox, queue, GRACE, now=NOW + 3 * 3600) == 0


def test_behind_a_backlog_a_copy_that_failed_is_tried_again_after_the_grace_not_an_hour(
    receipts: Receipts, outbox: Outbox, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hour is added to a mark only once its copy is sent: a send SQS refuses (or a sweeper
    dying before it) leaves the mark for the run after the grace."""
    queue = RetryQueue(boto3.client("sqs"), resources.queue_url)
    event = failure("refused")
    receipts.record(event, now=NOW)
    queue.send(RetryJob(event))  # waiting
    real_send = queue.send

    def refused(job: RetryJob, delay_seconds: int = 0) -> str:
        raise ClientError({"Error": {"Code": "InternalError"}}, "SendMessage")

    monkeypatch.setattr(queue, "send", refused)
    assert sweep(outbox, queue, GRACE, now=NOW + 300) == 0
    monkeypatch.setattr(queue, "send", real_send)
    assert sweep(outbox, queue, GRACE, now=NOW + 300 + GRACE) == 1
    assert depth(resources) == 2
    assert sweep(outbox, queue, GRACE, now=NOW + 300 + 3 * GRACE) == 0  # an hour on, now
