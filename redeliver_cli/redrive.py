"""`redeliver redrive`: count RetryDLQ, and with --yes move it back onto RetryQueue.

SQS's message move task does the moving where it exists; `--by-hand` receives, sends and deletes
instead, for moto (offline) and partitions without the task.
"""

from __future__ import annotations

import argparse
from typing import Any

import boto3

from redeliver_cli.stack import Stack


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "redrive",
        help="move RetryDLQ back onto RetryQueue",
        description="Count RetryDLQ, and with --yes move it back onto "
        "RetryQueue with an SQS message move task.",
    )
    cmd.add_argument("--yes", action="store_true", help="move them (without: count only)")
    cmd.add_argument(
        "--by-hand",
        action="store_true",
        help="receive, send and delete instead of a move task (moto, offline)",
    )
    cmd.set_defaults(run=lambda args: redrive(Stack.find(args.stack), args.yes, args.by_hand))


def redrive(stack: Stack, yes: bool, by_hand: bool) -> list[str]:
    sqs = boto3.client("sqs")
    dlq_url, queue_url = stack.output("RetryDLQUrl"), stack.output("RetryQueueUrl")
    count = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    lines = [f"RetryDLQ holds about {count} job(s)."]
    if count == 0 or not yes:
        if count:
            lines.append(
                "Fix what made them fail first (RetryFunction logs); then run again "
                "with --yes to move them back onto RetryQueue."
            )
        return lines
    if by_hand:
        moved = _move_by_hand(sqs, dlq_url, queue_url)
        return [*lines, f"Moved {moved} job(s) back onto RetryQueue (receive, send, delete)."]
    arn = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for url in (dlq_url, queue_url)
    }
    task = sqs.start_message_move_task(SourceArn=arn[dlq_url], DestinationArn=arn[queue_url])
    return [
        *lines,
        f"Started message move task {task['TaskHandle'][:40]}…; "
        "`aws sqs list-message-move-tasks` shows its progress.",
    ]


def _move_by_hand(sqs: Any, source: str, destination: str) -> int:
    """Where the move task is missing (moto, some partitions): send a copy, then delete."""
    moved = 0
    while messages := sqs.receive_message(
        QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages", []):
        for message in messages:
            sqs.send_message(QueueUrl=destination, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved
