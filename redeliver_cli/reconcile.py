"""`redeliver reconcile IM… | --stuck-for 2h`: the reconciler's lookup, now.

For the morning after an outage: ask Twilio's Receipts API about these messages, or about every
receipt stuck at `sent` for longer than a duration, and record what it reports through the
webhook's own path (a failure is queued for a retry), with the same store settings as the
deployed functions (the stack's ReceiptRetentionDays as the receipts' TTL, no reconciliation
index when ReconcileAfterMinutes is 0).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Sequence

import boto3

from redeliver.adapters.dynamodb.receipts import Receipts
from redeliver.adapters.dynamodb.reconciliation import StuckReceipts
from redeliver.adapters.sqs.retry_queue import RetryQueue
from redeliver.adapters.twilio.conversations import ConversationsGateway, TwilioError
from redeliver.adapters.twilio.credentials import CredentialSource
from redeliver.observability import logger, metrics
from redeliver.usecases.reconcile import Reconciler, Target
from redeliver.usecases.recorder import Recorder
from redeliver_cli.arguments import message_sid
from redeliver_cli.stack import CommandError, Stack, UsageError, iso, partition

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "reconcile",
        help="ask Twilio about receipts now (lost webhooks)",
        description="Ask Twilio's Receipts API about these messages, or about every receipt "
        "stuck at sent for longer than --stuck-for, and record what it reports as a webhook "
        "would have been (a failure is queued for a retry). For the morning after an outage.",
    )
    cmd.add_argument("message_sids", metavar="IM…", nargs="*", type=message_sid)
    cmd.add_argument(
        "--stuck-for", type=duration, metavar="DURATION", help="e.g. 45m, 2h, 1d (instead of SIDs)"
    )
    cmd.add_argument(
        "--dry-run", action="store_true", help="say what it would record, change nothing"
    )
    cmd.add_argument("--twilio-url", help=argparse.SUPPRESS)  # the simulator, offline
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    if bool(args.message_sids) == (args.stuck_for is not None):
        raise UsageError("give message SIDs or --stuck-for, not both and not neither")
    return reconcile(
        Stack.find(args.stack), args.message_sids, args.stuck_for, args.dry_run, args.twilio_url
    )


def duration(text: str) -> int:
    """`90m`, `2h`, `1.5d`: seconds (argparse type)."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 45m, 2h or 1d")
    return int(float(match[1]) * _UNIT_SECONDS[match[2]])


def reconcile(
    stack: Stack,
    message_sids: Sequence[str],
    stuck_for: int | None,
    dry_run: bool,
    twilio_url: str | None,
) -> list[str]:
    """The reconciler's lookup, now: for these messages, or every receipt stuck at `sent` for
    longer than `stuck_for` seconds. What Twilio reports is recorded through the webhook's own
    path (a failure is queued for a retry); with `dry_run` only said."""
    table = stack.output("ReceiptsTableName")
    # As the deployed functions: no stuck-at-sent index writes when reconciliation is off.
    track_sent = stack.parameters.get("ReconcileAfterMinutes", "30") != "0"
    dynamodb = boto3.client("dynamodb")
    receipts = Receipts(dynamodb, table, stack.retention_days, track_sent=track_sent)
    reconciler = Reconciler(
        stuck=StuckReceipts(dynamodb, table),
        receipts=receipts,
        twilio=ConversationsGateway(
            CredentialSource(stack.parameters["TwilioSecretArn"]),
            base_url=twilio_url or stack.parameters.get("TwilioConversationsUrl", ""),
        ),
        recorder=Recorder(receipts, RetryQueue(boto3.client("sqs"), stack.output("RetryQueueUrl"))),
        after_seconds=0,
    )
    if stuck_for is not None:
        targets = list(reconciler.stuck(older_than_seconds=stuck_for))
    else:
        targets = [_target(table, sid) for sid in message_sids]
    verb = "would record" if dry_run else "recorded"
    lines = []
    changed = failures = 0
    unanswered: list[str] = []
    # The operator reads the lines below, not the handlers' log, nor their metrics (EMF is for
    # Lambda): both are quieted for the command, then put back as they were.
    level = logger.log_level
    logger.setLevel("ERROR")
    try:
        for target in targets:
            lines.append(f"{target.message_sid} (conversation {target.conversation_sid})")
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # metrics: Lambda's EMF only
                    found = reconciler.lookup(target, dry_run=dry_run)
            except TwilioError as error:
                unanswered.append(target.message_sid)
                lines.append(f"  {_twilio_says(target, error)}")
                continue
            for f in found:
                event = f.event
                code = f" {event.error_code}" if event.error_code else ""
                what = f"{event.status}{code} at {iso(event.date_updated)}"
                if f.news:
                    changed += 1
                    failures += f.transition.enqueue
                    was = f.transition.previous_status or "unknown"
                    retry = ", queued for a retry" if f.transition.enqueue else ""
                    lines.append(f"  {event.receipt_sid}: {was} -> {what}: {verb}{retry}")
                else:
                    lines.append(f"  {event.receipt_sid}: {what}: nothing new")
            if not found:
                lines.append("  Twilio reports no receipt")
    finally:
        logger.setLevel(level)
        metrics.clear()
    lines.append(
        f"{len(targets)} message(s) looked up, {changed} receipt(s) {verb}, "
        f"{failures} failure(s){' would be' if dry_run else ''} queued for a retry"
        + (" (dry run: nothing changed)" if dry_run else "")
    )
    if unanswered:
        raise CommandError(
            f"Twilio could not answer for {len(unanswered)} of {len(targets)} message(s): "
            + ", ".join(unanswered),
            output=lines,
        )
    return lines


def _twilio_says(target: Target, error: TwilioError) -> str:
    """What a failed lookup means, for the operator: never just the exception."""
    where = (
        f"Conversation Service {target.chat_service_sid}"
        if target.chat_service_sid
        else "the account's default Conversation Service"
    )
    answer = f"HTTP {error.status}" + (f", code {error.code}" if error.code else "")
    if error.refused:
        return (
            f"Twilio refused the stack's credentials ({answer}): check the Twilio secret "
            "(a rotated auth token, a revoked API key)"
        )
    if error.kind == "not_found":
        return (
            f"Twilio does not know this message in {where}, conversation "
            f"{target.conversation_sid}, of the account the stack's credentials are for "
            f"({answer}): it was deleted, or it belongs to another service or account"
        )
    if error.kind == "permanent":
        return f"Twilio refused the lookup ({answer}): {error}"
    return f"Twilio did not answer now ({error}): try again later"


def _target(table: str, message_sid: str) -> Target:
    """Where to ask: a receipt's conversation, or (TrackMessages: a message none of whose
    receipts reached us) the tracked item's."""
    items = partition(table, message_sid)
    known = [i for i in items if i["sk"].startswith("RCPT#")] or [
        i for i in items if i["sk"] == "TRACKED"
    ]
    if not known:
        raise CommandError(
            f"no receipt of {message_sid} in {table}: its conversation is not known here"
        )
    return Target(message_sid, known[0]["conversation_sid"], known[0].get("chat_service_sid", ""))
