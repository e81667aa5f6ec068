"""SQS adapter: RetryQueue, the hand-off from ingest (and the sweeper) to the retry worker.

A received job that must come back is given the visibility its reason needs (`show_again_in`)
rather than the queue's whole visibility timeout. ChangeMessageVisibility keeps the receive count,
so maxReceiveCount and the DLQ still apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redeliver.domain.jobs import FollowUp, RetryJob

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_DELAY_SECONDS = 900  # SQS's limit; longer waits are made of several hops
MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit (12 hours)


class RetryQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, job: RetryJob | FollowUp, delay_seconds: int = 0) -> str:
        answer = self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=job.to_json(),
            DelaySeconds=max(0, min(delay_seconds, MAX_DELAY_SECONDS)),
        )
        return answer["MessageId"]

    def depth(self) -> int:
        """Jobs on the queue not yet done: waiting to be received, or received and in flight
        (SQS's approximate counts; delayed ones, not yet due, are not among them)."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        waiting = attributes.get("ApproximateNumberOfMessages", "0")
        in_flight = attributes.get("ApproximateNumberOfMessagesNotVisible", "0")
        return int(waiting) + int(in_flight)

    def show_again_in(self, receipt_handle: str, seconds: int) -> None:
        """Make a received job visible again in `seconds` (0: at once)."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY_SECONDS)),
        )
