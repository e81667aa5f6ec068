"""SQS adapter: RetryQueue, the hand-off from ingest (and the sweeper) to the retry worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redeliver.jobs import FollowUp, RetryJob

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_DELAY_SECONDS = 900  # SQS's limit; longer waits are made of several hops


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
