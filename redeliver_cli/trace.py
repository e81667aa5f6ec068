"""`redeliver trace IM…`: a message's receipts and its whole retry chain, as one timeline.

From any message of a chain (the original or any retry) the ORIGIN item leads to the root, whose
ATTEMPT# items name every retry and how it went out (the claim's intent `way`: the same content,
a Content template, or SMS); each message's RCPT# items hold its status history. Events of the
same second are ordered as the domain orders them, by status rank (`_ordered`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from redeliver.adapters.dynamodb.receipts import HISTORY_PREFIX
from redeliver.domain.receipts import ORDER_RANK
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
    # (when, place in the chain, status rank, what): see _ordered
    events: list[tuple[str, int, int, str]] = []
    messages = [(root, "original", root_items, 0)]
    for attempt in sorted(
        (i for i in root_items if i["sk"].startswith("ATTEMPT#")), key=lambda i: i["sk"]
    ):
        number = int(attempt["sk"].removeprefix("ATTEMPT#"))
        at = _when(attempt.get("updated_at") or attempt.get("claimed_at"))
        place = 2 * number - 1  # after the failure it answers, before its own message's receipts
        if attempt["state"] == "sent":
            new = attempt["new_message_sid"]
            what = (
                f"attempt {number}: sent {new} (retrying {attempt['failed_message_sid']}), "
                f"{way_of(attempt)}"
            )
            messages.append((new, f"retry {number}", partition(table, new), place + 1))
        elif attempt["state"] == "gave_up":
            what = (
                f"attempt {number}: gave up, {attempt['reason']} "
                f"(after {attempt['failed_message_sid']} "
                f"failed with {attempt.get('error_code') or 'no code'})"
            )
        else:
            what = f"attempt {number}: claimed to send {way_of(attempt)}, outcome not recorded yet"
        events.append((at, place, 0, what))
    for sid, role, items_of, place in messages:
        for receipt in (i for i in items_of if i["sk"].startswith("RCPT#")):
            for name, entry in receipt.items():
                if name.startswith(HISTORY_PREFIX):
                    status = name.removeprefix(HISTORY_PREFIX)
                    code = f" {entry['code']['N']}" if entry.get("code") else ""
                    events.append(
                        (
                            entry["at"]["S"],
                            place,
                            ORDER_RANK.get(status, 0),
                            f"{role} {sid} receipt "
                            f"{receipt['sk'].removeprefix('RCPT#')[:10]}…: {status}{code}",
                        )
                    )
    lines = [
        f"{message_sid}: chain of {root} ({len(messages) - 1} retr"
        f"{'y' if len(messages) == 2 else 'ies'})"
    ]
    lines += [f"  {at}  {what}" for at, _, _, what in sorted(events, key=_ordered)]
    return lines


def _ordered(event: tuple[str, int, int, str]) -> tuple[str, int, int, str, str]:
    """Time first, to the second (Twilio's REST dates have no milliseconds, and the domain
    compares receipts to the second); within a second, the chain's order (a failure, the attempt
    answering it, the new message's receipts) and then the status's rank as the domain ranks it
    (sent < undelivered < failed < delivered < read: receipts.ORDER_RANK), never the alphabet."""
    at, place, rank, what = event
    return at[:19], place, rank, at, what


# An attempt's way of sending (the claim's intent `way`: redeliver.usecases.retry.sending)
_WAYS = {
    "retry": "the same content in the same conversation",
    "template": "as a Content template in the same conversation",
    "fallback_sms": "as SMS (the WhatsApp fallback)",
}


def way_of(attempt: dict[str, Any]) -> str:
    way = str(attempt.get("way") or "")
    if not way:
        return "way not recorded (an attempt claimed before claims recorded it)"
    said = _WAYS.get(way, f"by {way}")
    if way == "fallback_sms":
        conversation = attempt.get("new_conversation_sid") or attempt.get("conversation_sid")
        if conversation:
            said += f" in conversation {conversation}"
        elif attempt.get("unique_name"):
            said += f" in a new conversation {attempt['unique_name']}"
    return said


def _when(epoch: Any) -> str:
    if not epoch:
        return "????-??-??T??:??:??"
    moment = datetime.fromtimestamp(int(epoch), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
