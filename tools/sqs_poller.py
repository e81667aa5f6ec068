"""Lambda's SQS event source, emulated: receive a batch, invoke the handler, delete what succeeded.

As Lambda does it: records are shaped like Lambda's SQS event; with ReportBatchItemFailures only
the items the handler lists in `batchItemFailures` stay on the queue (visible again after the
queue's visibility timeout, moving to the DLQ after maxReceiveCount); a handler that raises (or
a runtime that crashes) leaves the whole batch, as does Powertools' BatchProcessingError when
every record of a batch failed. moto itself would run the event source through
Docker (absent here, see tools/stack.py), so the tests and the offline stack use this instead.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.lambdas import FakeContext

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Batch:
    received: int = 0
    failed: list[str] = field(default_factory=list)  # message ids left on the queue
    crashed: bool = False
    handles: dict[str, str] = field(default_factory=dict)  # message id -> receipt handle
    error: str = ""  # the handler raised (Powertools does when every record failed)


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def poll_once(
    sqs: Any,
    queue_url: str,
    handler: Handler,
    *,
    batch_size: int = 10,
    wait_seconds: int = 0,
    report_batch_item_failures: bool = True,
    crash_types: tuple[type[BaseException], ...] = (),
    queue_arn: str | None = None,
) -> Batch:
    """One receive + invoke + delete cycle. `crash_types`: exceptions that stand for a dead
    runtime (the batch stays on the queue and the exception is swallowed). `queue_arn` saves a
    request per poll when the caller knows it.

    A failed record is left as the handler left it: if the handler changed its visibility
    (ChangeMessageVisibility, to come back sooner than the queue's visibility timeout), that
    holds, as it does under Lambda's poller."""
    arn = (
        queue_arn
        or sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=batch_size,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["All"],
    )
    messages = answer.get("Messages", [])
    if not messages:
        return Batch()
    region = arn.split(":")[3]
    handles = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
    event = {"Records": [lambda_record(m, arn, region) for m in messages]}
    caught: tuple[type[BaseException], ...] = (Exception, *crash_types)
    try:
        response = handler(event, FakeContext(remaining_ms=60_000))
    except caught as error:  # a function error: Lambda returns the whole batch
        return Batch(
            len(messages),
            [m["MessageId"] for m in messages],
            crashed=isinstance(error, crash_types),
            handles=handles,
            error=f"{type(error).__name__}: {error}",
        )
    failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
    if not report_batch_item_failures and failed:
        failed = {m["MessageId"] for m in messages}
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)
            ],
        )
    return Batch(len(messages), sorted(failed), handles={i: handles[i] for i in failed})


def poll_forever(
    sqs: Any,
    queue_url: str,
    handler: Handler,
    stop: threading.Event,
    *,
    queue_arn: str,
    batch_size: int = 10,
    report_batch_item_failures: bool = True,
    on_batch: Callable[[Batch], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    idle_seconds: float = 0.1,
    error_seconds: float = 0.5,
) -> None:
    """The offline stack's event source mapping, until `stop` is set: short polls (moto serves
    one request at a time, so a long poll would hold it), `idle_seconds` after an empty one;
    an error (moto unreachable) is passed to `on_error`, then polled again."""
    while not stop.is_set():
        try:
            batch = poll_once(
                sqs,
                queue_url,
                handler,
                batch_size=batch_size,
                wait_seconds=0,
                report_batch_item_failures=report_batch_item_failures,
                queue_arn=queue_arn,
            )
        except Exception as error:  # reported by the caller, polled again
            if on_error is not None:
                on_error(error)
            stop.wait(error_seconds)
            continue
        if batch.received:
            if on_batch is not None:
                on_batch(batch)
        else:
            stop.wait(idle_seconds)
