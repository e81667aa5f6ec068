"""`redeliver trace IM…`: a message's receipts and its whole retry chain, as one timeline.

From any message of a chain (the original or any retry) the ORIGIN item leads to the root, whose
ATTEMPT# items name every retry; each message's RCPT# items hold its status history.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from redeliver.adapters.dynamodb.store import HISTORY_PREFIX
from redeliver_cli.arguments import message_sid
from redeliver_cli.stack import CommandError, Stack, partition


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "trace",
        help="a message's receipts and its retry chain",
        description="A message's receipts and its whole retry chain.",
    )
    cmd.add_argument("message_sid", metavar="IM…", type=message_sid)
    cmd.set_defaults(run=lambda args: trace(Stack.find(args.stack), args.message_sid))


def trace(stack: Stack, message_sid: str) -> list[str]:
    table = stack.output("ReceiptsTableName")
    items = partition(table, message_sid)
    if not items:
        raise CommandError(f"no record of {message_sid} in {table} (unknown, or past its TTL)")
    origin = next((i for i in items if i["sk"] == "ORIGIN"), None)
    root = origin["root"] if origin else message_sid
    root_items = items if root == message_sid else partition(table, root)
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
            messages.append((new, f"retry {number}", partition(table, new)))
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
    for sid, role, items_of in messages:
        for receipt in (i for i in items_of if i["sk"].startswith("RCPT#")):
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
