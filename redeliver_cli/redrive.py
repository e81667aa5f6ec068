"""`redeliver redrive`: count RetryDLQ (SpillDLQ with --spill), and with --yes move it back onto
RetryQueue (SpillQueue), whose consumer takes it again: RetryFunction its jobs, SpillFunction
its spilled receipts (replayed through the webhook's own record path).

SQS's message move task does the moving where it exists. Where it does not (moto, offline: the
server answers 500 with an HTML page, the in-process mock raises; a partition without the API),
the command says so and points to `--by-hand`, which receives, sends and deletes instead.

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
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from redeliver_cli.arguments import positive_float
from redeliver_cli.stack import CommandError, Stack

WAIT_SECONDS = 60  # how long --by-hand waits for jobs still in flight
LONG_POLL_SECONDS = 20  # SQS's longest receive wait
# What SQS (or what stands in for it) answers where StartMessageMoveTask does not exist
_NO_MOVE_TASK = {"UnsupportedOperation", "InvalidAction", "UnknownOperationException"}


@dataclass(frozen=True)
class Pair:
    """A dead-letter queue and the queue its messages go back onto (stack outputs)."""

    dlq: str
    queue: str
    what: str  # what its messages are
    fix_first: str  # what to look at before moving them back

    def urls(self, stack: Stack) -> tuple[str, str]:
        return stack.output(f"{self.dlq}Url"), stack.output(f"{self.queue}Url")


RETRY = Pair("RetryDLQ", "RetryQueue", "job(s)", "what made them fail first (RetryFunction logs)")
SPILL = Pair(
    "SpillDLQ",
    "SpillQueue",
    "spilled receipt(s)",
    "what kept SpillFunction from replaying them first (its logs; the table's health and "
    "throttles)",
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "redrive",
        help="move RetryDLQ (or SpillDLQ) back onto its queue",
        description="Count RetryDLQ, and with --yes move it back onto RetryQueue with an SQS "
        "message move task (--by-hand where there is none: moto, offline). With --spill, the "
        "same for SpillDLQ and SpillQueue: SpillFunction replays the receipts.",
    )
    cmd.add_argument("--yes", action="store_true", help="move them (without: count only)")
    cmd.add_argument(
        "--spill",
        action="store_true",
        help="SpillDLQ back onto SpillQueue (receipts ingest could not write), not RetryDLQ",
    )
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
        run=lambda args: redrive(
            Stack.find(args.stack),
            args.yes,
            args.by_hand,
            args.wait_seconds,
            pair=SPILL if args.spill else RETRY,
        )
    )


def redrive(
    stack: Stack,
    yes: bool,
    by_hand: bool,
    wait_seconds: float = WAIT_SECONDS,
    *,
    pair: Pair = RETRY,
) -> list[str]:
    sqs = boto3.client("sqs")
    dlq_url, queue_url = pair.urls(stack)
    count = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    lines = [f"{pair.dlq} holds about {count} {pair.what}."]
    if count == 0 or not yes:
        if count:
            lines.append(
                f"Fix {pair.fix_first}; then run again with --yes to move them back onto "
                f"{pair.queue}."
            )
        return lines
    if by_hand:
        moved, visible, in_flight = _move_by_hand(sqs, dlq_url, queue_url, wait_seconds)
        if visible or in_flight:
            raise CommandError(
                f"moved {moved} {pair.what} back onto {pair.queue}, but "
                f"{visible + in_flight} {pair.what} remain in {pair.dlq} ({visible} visible, "
                f"{in_flight} in flight) after {wait_seconds:g} s: run it again (one in flight "
                "comes back when its visibility timeout ends)"
            )
        return [
            *lines,
            f"Moved {moved} {pair.what} back onto {pair.queue} (receive, send, delete).",
        ]
    arn = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for url in (dlq_url, queue_url)
    }
    try:
        task = sqs.start_message_move_task(SourceArn=arn[dlq_url], DestinationArn=arn[queue_url])
    except ClientError as error:
        if not _no_move_task(error):
            raise
        code = error.response.get("Error", {}).get("Code", "")
        answer = code if code.isalpha() else "no SQS error code"
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        raise CommandError(
            f"SQS's message move task is not available at this endpoint (StartMessageMoveTask "
            f"answered HTTP {status}, {answer}; moto, offline, has none): nothing was moved. "
            f"Run again with --by-hand, which receives, sends and deletes instead.",
            output=lines,
        ) from None
    except NotImplementedError:  # moto's in-process mock
        raise CommandError(
            "SQS's message move task is not available here (moto has none): nothing was "
            "moved. Run again with --by-hand, which receives, sends and deletes instead.",
            output=lines,
        ) from None
    return [
        *lines,
        f"Started message move task {task['TaskHandle'][:40]}…; "
        "`aws sqs list-message-move-tasks` shows its progress.",
    ]


def _no_move_task(error: ClientError) -> bool:
    """Whether SQS answered that the move task does not exist here: an unsupported operation,
    or a server error without an SQS error code (moto's server: 500 and an HTML page)."""
    code = error.response.get("Error", {}).get("Code", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code in _NO_MOVE_TASK or (status >= 500 and not code.isalpha())


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
