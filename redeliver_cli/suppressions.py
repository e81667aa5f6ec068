"""`redeliver suppressions check|remove +E164`: whether a number is suppressed (a policy v2
`suppress` rule met it), and lifting it. The table keeps only a hash of the number, so the operator
gives the number and the command hashes it as the worker does.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import boto3

from redeliver.adapters.dynamodb.suppressions import Suppressions, address_hash
from redeliver_cli.arguments import phone_number
from redeliver_cli.stack import Stack, iso


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "suppressions",
        help="is a number suppressed; lift it",
        description="Whether a phone number is suppressed (a `suppress` rule met it), and "
        "lifting it. The table keeps only a hash of the number.",
    )
    cmd.add_argument("suppression_action", choices=["check", "remove"])
    cmd.add_argument("number", metavar="+E164", type=phone_number)
    cmd.set_defaults(
        run=lambda args: suppressions(
            Stack.find(args.stack), args.suppression_action, args.number, datetime.now(UTC)
        )
    )


def suppressions(stack: Stack, action: str, number: str, now: datetime) -> list[str]:
    phone = number  # an E.164 number: arguments.phone_number checked it
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
        f"{phone}: suppressed since {iso(since)} until {iso(until)} "
        f"(error {found.error_code}; {key})"
    ]
