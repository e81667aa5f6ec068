"""`redeliver redrive`: count RetryDLQ, and with --yes move it back onto RetryQueue.

SQS's message move task does the moving where it exists; `--by-hand` receives, sends and deletes
instead, for moto (offline) and partitions without the task.

By hand, an empty answer proves nothing: a short poll samples some of SQS's servers and may
answer empty while the queue holds messages, and a job another consumer holds (in flight) comes
back only when its visibility timeout ends. So the receives long-poll, and an empty one ends the
move only when the queue's own counts (visible and in flight) say it is empty; otherwise it goes
on until `--wait-seconds` have passed, and says what remains (exit code 1) instead of success.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import boto3

from redeliver_cli.arguments import positive_float
from redeliver_cli.stack import CommandError, Stack

WAIT_SECONDS = 60  # how long --by-hand waits for jobs still in flight
LONG_POLL_SECONDS = 20  # SQS's longest receive wait


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
    cmd.add_argument(
        "--wait-seconds",
        type=positive_float,
        default=WAIT_SECONDS,
        help=f"with --by-hand: how long to wait for jobs still in flight (default {WAIT_SECONDS})",
    )
    cmd.set_defaults(
        run=lambda args: redrive(Stack.find(args.stack), args.yes, args.by_hand, args.wait_seconds)
    )


def redrive(
    stack: Stack, yes: bool, by_hand: bool, wait_seconds: float = WAIT_SECONDS
) -> list[str]:
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
        moved, visible, in_flight = _move_by_hand(sqs, dlq_url, queue_url, wait_seconds)
        if visible or in_flight:
            raise CommandError(
                f"moved {moved} job(s) back onto RetryQueue, but {visible + in_flight} job(s) "
                f"remain in RetryDLQ ({visible} visible, {in_flight} in flight) after "
                f"{wait_seconds:g} s: run it again (a job in flight comes back when its "
                "visibility timeout ends)"
            )
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


def _move_by_hand(
    sqs: Any,
    source: str,
    destination: str,
    wait_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, int, int]:
    """Where the move task is missing (moto, some partitions): send a copy, then delete, until
    the source's counts say it is empty or `wait_seconds` have passed. (moved, visible, in
    flight): what remains is counted by SQS, approximately."""
    deadline = clock() + wait_seconds
    moved = 0
    wait = 0  # a short poll while receives find jobs; a long one once the queue seems empty
    while True:
        messages = sqs.receive_message(
            QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=wait
        ).get("Messages", [])
        for message in messages:
            sqs.send_message(QueueUrl=destination, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
        if messages:
            wait = 0
            continue
        visible, in_flight = _depth(sqs, source)
        left = deadline - clock()
        if not (visible or in_flight) or left <= 0:
            return moved, visible, in_flight
        wait = max(1, min(LONG_POLL_SECONDS, int(left)))


def _depth(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])
