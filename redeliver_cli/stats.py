"""`redeliver stats`: receipts, failures, retries, recoveries and give-ups over a window, counted
from the table itself (CloudWatch holds the same as metrics, but an operator may not have the
dashboard at hand, and the table also knows which retries recovered)."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from redeliver_cli.arguments import positive_float
from redeliver_cli.stack import Stack

TOP_CODES = 8  # the codes named one by one; the rest are summed on an `other` entry


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "stats",
        help="failures, retries, recoveries, give-ups",
        description="Receipts, failures, retries, recoveries and "
        "give-ups over a window, from the table.",
    )
    cmd.add_argument(
        "--hours", type=positive_float, default=24.0, help="the window, above zero (24)"
    )
    cmd.set_defaults(run=lambda args: stats(Stack.find(args.stack), args.hours))


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
        f"  error codes {_top(codes)}",
        f"  retries     {attempts['sent']} sent, {recovered} recovered (delivered/read)",
        f"  given up    {attempts['gave_up']} {dict(reasons.most_common())}",
        f"  in flight   {attempts['claimed']} claimed attempt(s) without an outcome",
    ]


def _top(codes: Counter[str]) -> dict[str, int]:
    """The most frequent codes (ties by code), and the rest summed as `other (n codes)`: every
    failure is on the line, so its numbers add up to the failures line's."""
    ranked = sorted(codes.items(), key=lambda code: (-code[1], code[0]))
    if len(ranked) <= TOP_CODES:
        return dict(ranked)
    top, rest = ranked[: TOP_CODES - 1], ranked[TOP_CODES - 1 :]
    return {**dict(top), f"other ({len(rest)} codes)": sum(n for _, n in rest)}
