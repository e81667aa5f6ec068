"""Operator commands for a Redeliver stack: `python -m tools.cli --help`.

Each command finds the stack's resources by its CloudFormation stack name (outputs and
parameters), so it works the same against a deployed stack and against the offline one
(`--endpoint-url` set to moto's, as `make serve` prints).

    trace IM…            a message's receipts and its whole retry chain, as a timeline
    stats [--hours N]    receipts, failures, retries, recoveries and give-ups over a window
    redrive [--yes]      move RetryDLQ back onto RetryQueue (SQS message move task)
    configure-webhook    point a Conversation Service's post-event webhook at the stack
    reconcile IM… | --stuck-for 2h [--dry-run]
                         ask Twilio's Receipts API now and record what it reports (issue 9)
    policy check FILE [--to +E164] [--at ISO]
                         validate a RetryPolicy document (no stack needed) and show, for sample
                         failures, what it would do (`make policy-check FILE=...`)
    suppressions check|remove +E164
                         is a number suppressed (policy v2 `suppress`), and lift it
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from redeliver.conversations import ConversationsGateway, TwilioError
from redeliver.credentials import CredentialSource, TwilioCredentials
from redeliver.ingest import Recorder
from redeliver.observability import logger
from redeliver.policy import (
    Failure,
    GiveUp,
    PolicyError,
    RetryPolicy,
    Send,
    Suppress,
    Wait,
    decide,
    no_jitter,
)
from redeliver.quiet_hours import e164
from redeliver.reconcile import Reconciler, Target
from redeliver.retry_queue import RetryQueue
from redeliver.store import HISTORY_PREFIX, ReceiptStore
from redeliver.suppressions import Suppressions, address_hash

DELIVERY_EVENT = "onDeliveryUpdated"
_MESSAGE_SID = re.compile(r"^IM[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^IS[0-9a-fA-F]{32}$")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class CommandError(Exception):
    """Said to the operator as it is, with exit code 1."""


@dataclass
class Stack:
    name: str
    outputs: dict[str, str]
    parameters: dict[str, str]

    @classmethod
    def find(cls, name: str) -> Stack:
        try:
            [stack] = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            raise CommandError(
                f"stack {name!r} not found: {error.response['Error']['Message']}"
            ) from None
        return cls(
            name,
            {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        )

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise CommandError(f"stack {self.name!r} has no output {key}: is it a Redeliver stack?")
        return self.outputs[key]


# -- trace ---------------------------------------------------------------------------------------


def _partition(table: str, message_sid: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"MSG#{message_sid}"}},
        ConsistentRead=True,
    ):
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"]]
    return items


def trace(stack: Stack, message_sid: str) -> list[str]:
    if not _MESSAGE_SID.match(message_sid):
        raise CommandError(f"{message_sid!r} is not a message SID (IM followed by 32 hex digits)")
    table = stack.output("ReceiptsTableName")
    items = _partition(table, message_sid)
    if not items:
        raise CommandError(f"no record of {message_sid} in {table} (unknown, or past its TTL)")
    origin = next((i for i in items if i["sk"] == "ORIGIN"), None)
    root = origin["root"] if origin else message_sid
    root_items = items if root == message_sid else _partition(table, root)
    events: list[tuple[str, str]] = []
    messages = [(root, "original", root_items)]
    for attempt in sorted(
        (i for i in root_items if i["sk"].startswith("ATTEMPT#")), key=lambda i: i["sk"]
    ):
        number = int(attempt["sk"].removeprefix("ATTEMPT#"))
        at = _when(attempt.get("updated_at") or attempt.get("claimed_at"))
        if attempt["state"] == "sent":
            new = attempt["new_message_sid"]
            events.append(
                (at, f"attempt {number}: sent {new} (retrying {attempt['failed_message_sid']})")
            )
            messages.append((new, f"retry {number}", _partition(table, new)))
        elif attempt["state"] == "gave_up":
            events.append(
                (
                    at,
                    f"attempt {number}: gave up, {attempt['reason']} "
                    f"(after {attempt['failed_message_sid']} "
                    f"failed with {attempt.get('error_code') or 'no code'})",
                )
            )
        else:
            events.append((at, f"attempt {number}: claimed, outcome not recorded yet"))
    for sid, role, partition in messages:
        for receipt in (i for i in partition if i["sk"].startswith("RCPT#")):
            for name, entry in receipt.items():
                if name.startswith(HISTORY_PREFIX):
                    status = name.removeprefix(HISTORY_PREFIX)
                    code = f" {entry['code']['N']}" if entry.get("code") else ""
                    events.append(
                        (
                            entry["at"]["S"],
                            f"{role} {sid} receipt "
                            f"{receipt['sk'].removeprefix('RCPT#')[:10]}…: {status}{code}",
                        )
                    )
    lines = [
        f"{message_sid}: chain of {root} ({len(messages) - 1} retr"
        f"{'y' if len(messages) == 2 else 'ies'})"
    ]
    lines += [f"  {at}  {what}" for at, what in sorted(events)]
    return lines


def _when(epoch: Any) -> str:
    if not epoch:
        return "????-??-??T??:??:??"
    moment = datetime.fromtimestamp(int(epoch), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- stats ---------------------------------------------------------------------------------------


def stats(stack: Stack, hours: float, now: datetime | None = None) -> list[str]:
    """From the table itself (CloudWatch holds the same as metrics): what changed in the window."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    since_iso = since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    client = boto3.client("dynamodb")
    receipts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    retries: dict[str, set[str]] = {}
    for page in client.get_paginator("scan").paginate(TableName=stack.output("ReceiptsTableName")):
        for raw in page["Items"]:
            item: dict[str, Any] = {k: next(iter(v.values())) for k, v in raw.items()}
            sk = str(item["sk"])
            if sk.startswith("RCPT#") and item.get("date_updated", "") >= since_iso:
                receipts[item["status"]] += 1
                if item["status"] in ("undelivered", "failed"):
                    codes[str(item.get("error_code", "none"))] += 1
                retries.setdefault(item["pk"], set()).add(item["status"])
            elif (
                sk.startswith("ATTEMPT#") and int(item.get("updated_at") or 0) >= since.timestamp()
            ):
                attempts[item["state"]] += 1
                if item["state"] == "gave_up":
                    reasons[item["reason"]] += 1
            elif sk == "ORIGIN":
                retries.setdefault(item["pk"], set()).add("is_retry")
    sent_retries = [s for s in retries.values() if "is_retry" in s]
    recovered = sum(1 for s in sent_retries if s & {"delivered", "read"})
    failures = receipts["undelivered"] + receipts["failed"]
    total = sum(receipts.values())
    return [
        f"{stack.name}, last {hours:g} h (since {since_iso})",
        f"  receipts    {total} {dict(sorted(receipts.items()))}",
        f"  failures    {failures} ({100 * failures / total:.1f} %)"
        if total
        else "  failures    0",
        f"  error codes {dict(codes.most_common(8))}",
        f"  retries     {attempts['sent']} sent, {recovered} recovered (delivered/read)",
        f"  given up    {attempts['gave_up']} {dict(reasons.most_common())}",
        f"  in flight   {attempts['claimed']} claimed attempt(s) without an outcome",
    ]


# -- redrive -------------------------------------------------------------------------------------


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


# -- configure-webhook ---------------------------------------------------------------------------


def configure_webhook(
    stack: Stack, service_sid: str, dry_run: bool, url: str | None, twilio_url: str | None
) -> list[str]:
    if not _SERVICE_SID.match(service_sid):
        raise CommandError(f"{service_sid!r} is not a Conversation Service SID (IS…)")
    target = url or stack.output("WebhookUrl")
    if not target.startswith("https://") and not url:
        raise CommandError(f"the stack's WebhookUrl is not an https URL: {target}")
    secret = boto3.client("secretsmanager").get_secret_value(
        SecretId=stack.parameters["TwilioSecretArn"]
    )["SecretString"]
    credentials = TwilioCredentials.from_secret(json.loads(secret))
    client = Client(
        credentials.api_key_sid or credentials.account_sid,
        credentials.api_key_secret or credentials.auth_token,
        account_sid=credentials.account_sid,
        http_client=TwilioHttpClient(timeout=10),
    )
    base = twilio_url or stack.parameters.get("TwilioConversationsUrl", "")
    if base:
        client.conversations.base_url = base.rstrip("/")
    webhooks = client.conversations.v1.services(service_sid).configuration.webhooks()
    before = webhooks.fetch()
    filters = sorted(set(before.filters or []) | {DELIVERY_EVENT})  # Twilio replaces the list
    lines = [
        f"Conversation Service {service_sid}",
        f"  before: POST-webhook {before.post_webhook_url or '(none)'}, method "
        f"{before.method}, filters {before.filters or []}",
        f"  after:  POST-webhook {target}, method POST, filters {filters}",
    ]
    if before.post_webhook_url and before.post_webhook_url != target:
        lines.append(
            f"  note: this replaces the post-event webhook {before.post_webhook_url}: "
            "every event in the filters goes to Redeliver now"
        )
    if dry_run:
        return [*lines, "Dry run: nothing changed."]
    webhooks.update(post_webhook_url=target, filters=filters, method="POST")
    return [*lines, "Updated."]


# -- reconcile -----------------------------------------------------------------------------------


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
    if bool(message_sids) == (stuck_for is not None):
        raise CommandError("give message SIDs or --stuck-for, not both and not neither")
    for sid in message_sids:
        if not _MESSAGE_SID.match(sid):
            raise CommandError(f"{sid!r} is not a message SID (IM followed by 32 hex digits)")
    table = stack.output("ReceiptsTableName")
    # As the deployed functions: no stuck-at-sent index writes when reconciliation is off.
    track_sent = stack.parameters.get("ReconcileAfterMinutes", "30") != "0"
    store = ReceiptStore(boto3.client("dynamodb"), table, track_sent=track_sent)
    reconciler = Reconciler(
        store=store,
        twilio=ConversationsGateway(
            CredentialSource(stack.parameters["TwilioSecretArn"]),
            base_url=twilio_url or stack.parameters.get("TwilioConversationsUrl", ""),
        ),
        recorder=Recorder(store, RetryQueue(boto3.client("sqs"), stack.output("RetryQueueUrl"))),
        after_seconds=0,
    )
    if stuck_for is not None:
        targets = list(reconciler.stuck(older_than_seconds=stuck_for))
    else:
        targets = [_target(table, sid) for sid in message_sids]
    verb = "would record" if dry_run else "recorded"
    lines = []
    changed = failures = 0
    logger.setLevel("ERROR")  # the operator reads the lines below, not the handlers' log
    for target in targets:
        with contextlib.redirect_stdout(io.StringIO()):  # metrics are for Lambda's EMF only
            found = reconciler.lookup(target, dry_run=dry_run)
        lines.append(f"{target.message_sid} (conversation {target.conversation_sid})")
        for f in found:
            event = f.event
            code = f" {event.error_code}" if event.error_code else ""
            what = f"{event.status}{code} at {_iso(event.date_updated)}"
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
    lines.append(
        f"{len(targets)} message(s) looked up, {changed} receipt(s) {verb}, "
        f"{failures} failure(s){' would be' if dry_run else ''} queued for a retry"
        + (" (dry run: nothing changed)" if dry_run else "")
    )
    return lines


def _target(table: str, message_sid: str) -> Target:
    receipts = [i for i in _partition(table, message_sid) if i["sk"].startswith("RCPT#")]
    if not receipts:
        raise CommandError(
            f"no receipt of {message_sid} in {table}: its conversation is not known here"
        )
    return Target(
        message_sid, receipts[0]["conversation_sid"], receipts[0].get("chat_service_sid", "")
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- policy check (issue 10, item 5) -----------------------------------------------------------

# Sample failures: the codes of the default policy's table (README), and one no rule names.
SAMPLE_CODES = (30001, 30003, 30005, 30006, 30007, 30008, 30034, 30450, 21610, 63016, 63018, 63024)
UNMAPPED_SAMPLE = 99999


def policy_check(path: str, to: str, at: datetime, retention_days: int | None = None) -> list[str]:
    """Validate the document at `path` (`-` for stdin) and say what it does with each sample
    failure: attempt 1, failed at `at`, to `to`, as the worker's last look before a send."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    try:
        policy = RetryPolicy.parse(text, retention_days=retention_days)
    except PolicyError as error:
        raise CommandError(f"invalid RetryPolicy: {error}") from None
    lines = [
        f"{path}: valid. max_attempts={policy.max_attempts} "
        f"max_age_seconds={policy.max_age_seconds} suppress_days={policy.suppress_days} "
        f"quiet_hours={_quiet(policy)}",
        f"sample failures, attempt 1, failed at {_iso(at)}, to {to}:",
    ]
    for code in (*SAMPLE_CODES, UNMAPPED_SAMPLE):
        failure = Failure(code, 1, at, at, 1, address=to, address_known=True)
        unmapped = '  (only "*" matched: UnmappedErrorCode)' if policy.unmapped(code) else ""
        lines.append(f"  {code:>5}  {_what(decide(policy, failure, at, no_jitter), at)}{unmapped}")
    return lines


def _quiet(policy: RetryPolicy) -> str:
    quiet = policy.quiet_hours
    if quiet is None:
        return "none"
    zone = "the recipient's zone" if quiet.timezone == "recipient" else quiet.timezone
    return f"{quiet.start:%H:%M}-{quiet.end:%H:%M} in {zone} (default {quiet.default_timezone})"


def _what(decision: Send | Wait | GiveUp | Suppress, at: datetime) -> str:
    if isinstance(decision, GiveUp):
        return f"give up ({decision.reason})"
    if isinstance(decision, Suppress):
        return f"suppress the recipient for {decision.days} days, no resend"
    if isinstance(decision, Wait):
        return f"wait {decision.seconds} s, until {_iso(decision.due_at)}, then look again"
    if decision.action == "template" and decision.template is not None:
        return f"send Content template {decision.template.content_sid} now"
    if decision.action == "fallback_sms":
        return f"send as SMS from {decision.sms_from} now (a WhatsApp recipient)"
    return "send the same content again now"


# -- suppressions (issue 10, item 7) -------------------------------------------------------------


def suppressions(stack: Stack, action: str, number: str, now: datetime) -> list[str]:
    phone = e164(number)
    if phone is None or phone != number.strip():
        raise CommandError(f"{number!r} is not an E.164 number (+ and up to 15 digits)")
    table = stack.output("ReceiptsTableName")
    store = Suppressions(boto3.client("dynamodb"), table)
    key = f"SUPPRESS#{address_hash(phone)[:12]}…"  # the number itself is never stored
    if action == "remove":
        if store.remove(phone):
            return [f"{phone}: suppression lifted ({key})"]
        return [f"{phone}: was not suppressed"]
    found = store.get(phone, int(now.timestamp()))
    if found is None:
        return [f"{phone}: not suppressed"]
    since = datetime.fromtimestamp(found.since, UTC)
    until = datetime.fromtimestamp(found.expires_at, UTC)
    return [
        f"{phone}: suppressed since {_iso(since)} until {_iso(until)} "
        f"(error {found.error_code}; {key})"
    ]


# -- the command ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m tools.cli",
        description="Operate a Redeliver stack.",
        epilog="Against the offline stack: --endpoint-url <moto URL> --stack redeliver-local",
    )
    top.add_argument(
        "--stack",
        default=os.environ.get("REDELIVER_STACK", "redeliver"),
        help="CloudFormation stack name (default: $REDELIVER_STACK or redeliver)",
    )
    top.add_argument("--region", help="AWS region (default: the AWS SDK's)")
    top.add_argument("--endpoint-url", help="an AWS endpoint to use instead (moto, offline)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmd = commands.add_parser(
        "trace",
        help="a message's receipts and its retry chain",
        description="A message's receipts and its whole retry chain.",
    )
    cmd.add_argument("message_sid", metavar="IM…")
    cmd = commands.add_parser(
        "stats",
        help="failures, retries, recoveries, give-ups",
        description="Receipts, failures, retries, recoveries and "
        "give-ups over a window, from the table.",
    )
    cmd.add_argument("--hours", type=float, default=24.0, help="the window (24)")
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
    cmd = commands.add_parser(
        "configure-webhook",
        help="point a service's webhook here",
        description="Point a Conversation Service's post-event webhook "
        "at the stack, adding onDeliveryUpdated to its filters.",
    )
    cmd.add_argument("service_sid", metavar="IS…")
    cmd.add_argument("--dry-run", action="store_true", help="show before and after, change nothing")
    cmd.add_argument("--url", help="the webhook URL (default: the stack's WebhookUrl output)")
    cmd.add_argument("--twilio-url", help=argparse.SUPPRESS)  # the simulator, offline
    cmd = commands.add_parser(
        "reconcile",
        help="ask Twilio about receipts now (lost webhooks)",
        description="Ask Twilio's Receipts API about these messages, or about every receipt "
        "stuck at sent for longer than --stuck-for, and record what it reports as a webhook "
        "would have been (a failure is queued for a retry). For the morning after an outage.",
    )
    cmd.add_argument("message_sids", metavar="IM…", nargs="*")
    cmd.add_argument(
        "--stuck-for", type=duration, metavar="DURATION", help="e.g. 45m, 2h, 1d (instead of SIDs)"
    )
    cmd.add_argument(
        "--dry-run", action="store_true", help="say what it would record, change nothing"
    )
    cmd.add_argument("--twilio-url", help=argparse.SUPPRESS)  # the simulator, offline
    cmd = commands.add_parser(
        "policy",
        help="validate a RetryPolicy document",
        description="Validate a RetryPolicy document before a deploy (the field is named when "
        "it is invalid) and show what it would do with sample failures. Needs no stack.",
    )
    cmd.add_argument("policy_action", choices=["check"])
    cmd.add_argument("file", metavar="FILE", help="the JSON document ('-': standard input)")
    cmd.add_argument(
        "--to", default="+12125550100", help="the sample recipient (+12125550100, New York)"
    )
    cmd.add_argument(
        "--at",
        type=datetime.fromisoformat,
        default=None,
        help="the sample failure's time, ISO 8601 with an offset (default: now)",
    )
    cmd.add_argument(
        "--retention-days", type=int, help="the stack's ReceiptRetentionDays, to check max_age"
    )
    cmd = commands.add_parser(
        "suppressions",
        help="is a number suppressed; lift it",
        description="Whether a phone number is suppressed (a `suppress` rule met it), and "
        "lifting it. The table keeps only a hash of the number.",
    )
    cmd.add_argument("suppression_action", choices=["check", "remove"])
    cmd.add_argument("number", metavar="+E164")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    try:
        if args.command == "policy":
            at = args.at or datetime.now(UTC)
            if at.tzinfo is None:
                raise CommandError("--at needs an offset (Z, +01:00, ...)")
            print("\n".join(policy_check(args.file, args.to, at, args.retention_days)))
            return 0
        stack = Stack.find(args.stack)
        if args.command == "suppressions":
            lines = suppressions(stack, args.suppression_action, args.number, datetime.now(UTC))
        elif args.command == "trace":
            lines = trace(stack, args.message_sid)
        elif args.command == "stats":
            lines = stats(stack, args.hours)
        elif args.command == "redrive":
            lines = redrive(stack, args.yes, args.by_hand)
        elif args.command == "reconcile":
            lines = reconcile(
                stack, args.message_sids, args.stuck_for, args.dry_run, args.twilio_url
            )
        else:
            lines = configure_webhook(
                stack, args.service_sid, args.dry_run, args.url, args.twilio_url
            )
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError, TwilioException, TwilioError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
