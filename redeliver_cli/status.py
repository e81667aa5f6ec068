"""`redeliver status`: the system's state now, in one look.

- the queues (RetryQueue, RetryDLQ, SpillQueue, SpillDLQ): messages visible, in flight and
  delayed, as SQS counts them (approximately);
- the outbox: failures ingest marked and the retry worker has not taken yet, and receipts at
  `sent` the reconciler will ask about: each a Query per shard of its sparse index
  (RetryPendingByShard, StuckSentByShard, through the store's own reads), counted up to a cap;
- claims held (attempts in state `claimed`: a worker is sending, or died or timed out while it
  did) and the stale ones (at least as old as the worker's own stale-claim age, from the retry
  function's configuration), and the most recent attempts with their state and outcome.

No index holds attempts by state or by time, so the last two come from a Scan of the table,
filtered to ATTEMPT# items and bounded: pages of `PAGE_ITEMS` items, at most `--scan-pages`
pages. The output says what was read and, when the cap stopped it, that claims and attempts
beyond were not seen.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from redeliver.adapters.dynamodb.outbox import Outbox, PendingFailure
from redeliver.adapters.dynamodb.reconciliation import StuckReceipts
from redeliver.settings import ConfigurationError, Settings
from redeliver_cli.arguments import positive_int
from redeliver_cli.stack import Stack, iso
from redeliver_cli.trace import way_of

QUEUES = ("RetryQueue", "RetryDLQ", "SpillQueue", "SpillDLQ")
_WHAT_NEXT = {
    "RetryDLQ": "`redeliver redrive`",
    "SpillDLQ": "`redeliver redrive --spill`",
}
PAGE_ITEMS = 1000  # a Scan page's Limit: items read (before the filter) per request
SCAN_PAGES = 10  # default page cap: at most PAGE_ITEMS * SCAN_PAGES items read
INDEX_CAP = 10_000  # index entries counted at most, per index
EVERY = 2**53  # an index sort key (epoch seconds) no entry reaches: the Queries' "older than"
RECENT = 10
LISTED_CLAIMS = 10  # claims listed one by one (all are counted)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "status",
        help="queues, outbox, claims and recent attempts, now",
        description="The system's state now: queue and DLQ depths, failures not yet taken, "
        "receipts at sent, claims held (and stale ones), and the most recent attempts. The "
        "last two come from a bounded Scan (no index holds attempts), and it says so.",
    )
    cmd.add_argument(
        "--recent",
        type=positive_int,
        default=RECENT,
        metavar="N",
        help=f"how many recent attempts to show ({RECENT})",
    )
    cmd.add_argument(
        "--scan-pages",
        type=positive_int,
        default=SCAN_PAGES,
        metavar="N",
        help=f"the Scan's page cap, pages of {PAGE_ITEMS} items ({SCAN_PAGES})",
    )
    cmd.set_defaults(
        run=lambda args: status(
            Stack.find(args.stack), recent=args.recent, scan_pages=args.scan_pages
        )
    )


@dataclass
class Scanned:
    """What the bounded Scan of ATTEMPT# items read."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    items_read: int = 0
    pages: int = 0
    complete: bool = False


def status(
    stack: Stack,
    *,
    recent: int = RECENT,
    scan_pages: int = SCAN_PAGES,
    page_items: int = PAGE_ITEMS,
    now: datetime | None = None,
) -> list[str]:
    now = now or datetime.now(UTC)
    table = stack.output("ReceiptsTableName")
    lines = [f"{stack.name} at {iso(now)}", "  queues        visible / in flight / delayed"]
    sqs = boto3.client("sqs")
    for queue in QUEUES:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.output(f"{queue}Url"),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        visible = int(attributes.get("ApproximateNumberOfMessages", "0"))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0"))
        delayed = int(attributes.get("ApproximateNumberOfMessagesDelayed", "0"))
        next_step = _WHAT_NEXT.get(queue) if visible or in_flight else None
        lines.append(
            f"    {queue:<11} {visible} / {in_flight} / {delayed}"
            + (f"   {next_step}" if next_step else "")
        )
    lines += _indexes(stack, table)
    stale_after, stale_source = _stale_after(stack)
    scanned = _scan_attempts(table, scan_pages, page_items)
    lines += _claims(scanned.attempts, now, stale_after, stale_source)
    lines += _recent(scanned.attempts, recent)
    bound = f"at most {scan_pages} page(s) of {page_items} items"
    lines.append(
        f"  scan          claims and attempts: a Scan of {table} (no index holds attempts by "
        f"state or time), bounded to {bound}: read {scanned.items_read} item(s) in "
        f"{scanned.pages} page(s), "
        + (
            "the whole table"
            if scanned.complete
            else "stopped at the cap: claims and attempts beyond it are not counted "
            "(--scan-pages N reads further)"
        )
    )
    return lines


def _indexes(stack: Stack, table: str) -> list[str]:
    """The outbox and the receipts at `sent`, from their sparse indexes (the store's Queries):
    every entry, however recent (`EVERY`), up to INDEX_CAP."""
    dynamodb = boto3.client("dynamodb")
    pending = list(islice(Outbox(dynamodb, table).pending_failures(older_than=EVERY), INDEX_CAP))
    since = [p.pending_since for p in pending if isinstance(p, PendingFailure)]
    unreadable = len(pending) - len(since)
    lines = [
        f"  outbox        {_count(len(pending))} failure(s) marked and not yet taken by the "
        f"retry worker{_oldest(since)}"
        + (f", {unreadable} unreadable" if unreadable else "")
        + " (RetryPendingByShard, Query)"
    ]
    if stack.parameters.get("ReconcileAfterMinutes", "30") == "0":
        lines.append("  at sent       not tracked: ReconcileAfterMinutes is 0")
        return lines
    stuck = list(islice(StuckReceipts(dynamodb, table).stuck_sent(older_than=EVERY), INDEX_CAP))
    lines.append(
        f"  at sent       {_count(len(stuck))} receipt(s) the reconciler may ask Twilio "
        f"about{_oldest([s.since for s in stuck])} (StuckSentByShard, Query)"
    )
    return lines


def _count(n: int) -> str:
    return f"at least {n}" if n >= INDEX_CAP else str(n)


def _oldest(epochs: Iterable[int]) -> str:
    times = list(epochs)
    if not times:
        return ""
    return f", the oldest since {iso(datetime.fromtimestamp(min(times), UTC))}"


def _stale_after(stack: Stack) -> tuple[int, str]:
    """The age past which the worker treats a claim as stale (Settings.claim_stale_seconds),
    from the retry function's own environment; the template's defaults if it cannot be read."""
    try:
        name = stack.output("RetryFunctionName")
        config = boto3.client("lambda").get_function_configuration(FunctionName=name)
        environment = config.get("Environment", {}).get("Variables", {})
        settings = Settings.from_env({k: str(v) for k, v in environment.items()})
    except (ClientError, BotoCoreError, ConfigurationError) as error:
        defaults = Settings(table_name="", retry_queue_url="", twilio_secret_arn="")
        return defaults.claim_stale_seconds, (
            f"the worker's stale-claim age by the template's defaults (RetryFunction's "
            f"configuration unread: {error})"
        )
    return settings.claim_stale_seconds, "the worker's stale-claim age by RetryFunction's timeouts"


def _scan_attempts(table: str, pages: int, page_items: int) -> Scanned:
    """ATTEMPT# items, by a Scan of at most `pages` pages of `page_items` items read."""
    client = boto3.client("dynamodb")
    scanned = Scanned()
    request: dict[str, Any] = {
        "TableName": table,
        "Limit": page_items,
        "FilterExpression": "begins_with(sk, :attempt)",
        "ProjectionExpression": "pk, sk, #state, claimed_at, updated_at, reason, "
        "new_message_sid, new_conversation_sid, failed_message_sid, error_code, way, "
        "conversation_sid, unique_name",
        "ExpressionAttributeNames": {"#state": "state"},
        "ExpressionAttributeValues": {":attempt": {"S": "ATTEMPT#"}},
    }
    for _ in range(pages):
        page = client.scan(**request)
        scanned.pages += 1
        scanned.items_read += int(page.get("ScannedCount", 0))
        scanned.attempts += [
            {k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"]
        ]
        if "LastEvaluatedKey" not in page:
            scanned.complete = True
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return scanned


def _claims(
    attempts: list[dict[str, Any]], now: datetime, stale_after: int, source: str
) -> list[str]:
    claims = sorted(
        (a for a in attempts if a.get("state") == "claimed"),
        key=lambda a: int(a.get("claimed_at") or 0),
    )
    epoch = now.timestamp()
    # The worker's own test (claims.py): a claim is stale once its age reaches the stale age.
    stale = [a for a in claims if epoch - int(a.get("claimed_at") or 0) >= stale_after]
    lines = [
        f"  claims        {len(claims)} held, {len(stale)} stale (at least {stale_after} s old, "
        f"{source}: its worker died or its create timed out, and the job's next delivery "
        "searches for its message and resolves it)"
    ]
    for claim in claims[:LISTED_CLAIMS]:
        age = int(epoch - int(claim.get("claimed_at") or 0))
        lines.append(
            f"    {_root(claim)} attempt {_number(claim)}: claimed {age} s ago"
            f"{' (stale)' if claim in stale else ''}, to send {way_of(claim)}"
        )
    if len(claims) > LISTED_CLAIMS:
        lines.append(f"    … {len(claims) - LISTED_CLAIMS} more (the oldest are listed)")
    return lines


def _recent(attempts: list[dict[str, Any]], count: int) -> list[str]:
    latest = sorted(attempts, key=_when, reverse=True)[:count]
    lines = [f"  recent        the last {len(latest)} attempt(s) of those scanned, newest first"]
    for attempt in latest:
        when = iso(datetime.fromtimestamp(_when(attempt), UTC))
        lines.append(
            f"    {when}  {_root(attempt)} attempt {_number(attempt)}: {_outcome(attempt)}"
        )
    return lines


def _outcome(attempt: dict[str, Any]) -> str:
    state = attempt.get("state")
    code = attempt.get("error_code")
    after = f"after {attempt.get('failed_message_sid', '?')} failed" + (
        f" with {code}" if code and str(code) != "0" else ""
    )
    if state == "sent":
        return f"sent {attempt.get('new_message_sid')}, {way_of(attempt)} ({after})"
    if state == "gave_up":
        return f"gave up, {attempt.get('reason') or 'no reason recorded'} ({after})"
    return f"claimed, outcome not recorded yet ({after})"


def _when(attempt: dict[str, Any]) -> int:
    return int(attempt.get("updated_at") or attempt.get("claimed_at") or 0)


def _root(attempt: dict[str, Any]) -> str:
    return str(attempt["pk"]).removeprefix("MSG#")


def _number(attempt: dict[str, Any]) -> int:
    return int(str(attempt["sk"]).removeprefix("ATTEMPT#"))
