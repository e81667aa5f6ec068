"""What did not settle, where it is, and why (from the functions' own log lines): the part of a
report that an unsettled run adds."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import boto3

from tools.offline.checks import chains, failure_decision, stored_failures
from tools.offline.runtime import describe_job
from tools.offline.stack import Offline
from tools.offline.state import pending_failures, queue_depth, reconciling, stuck_receipts
from tools.stack import load_template


def whereabouts(
    offline: Offline,
    items: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    dead: list[str],
) -> list[str]:
    """What did not settle, where it is, and why (from the functions' own log lines)."""
    lines = []
    emitter = offline.emitter
    if emitter is not None and not emitter.idle:
        lines.append(
            f"webhooks still to send or awaiting ingest's answer ({emitter.in_flight} in flight)"
        )
    depth = queue_depth(boto3.client("sqs"), offline.stack.outputs["RetryQueueUrl"])
    visible = depth.get("ApproximateNumberOfMessages", 0)
    delayed = depth.get("ApproximateNumberOfMessagesDelayed", 0)
    if visible:
        lines.append(f"{visible} job(s) queued, not yet received")
    if delayed:
        lines.append(f"{delayed} job(s) delayed (a policy delay, or a re-enqueued wait)")
    reasons = log_reasons(offline.runtime.log)
    visibility = offline.tuning.visibility_timeout or int(
        load_template()["Resources"]["RetryQueue"]["Properties"]["VisibilityTimeout"]
    )
    now = time.monotonic()
    for job in offline.pollers.book.open():
        if job.state == "in the handler":
            where = f"in the handler for {now - job.since:.0f} s"
        else:
            where = (
                f"back to the queue {now - job.since:.0f} s ago, invisible until its visibility "
                f"timeout ({visibility} s, or what the handler set) runs out"
            )
        why = job.error or reasons.get(job.summary.split(" ", 1)[0], "")
        lines.append(
            f"job {job.summary}: {where}; received {job.receives}x"
            + (f"; why: {why}" if why else "")
        )
    for body in dead:
        lines.append(f"job {describe_job(body)}: in the DLQ")
    if reconciling(offline) and (stuck := stuck_receipts(offline)):
        lines.append(
            f"{len(stuck)} receipt(s) at sent: the reconciler asks Twilio about each once it is "
            f"{offline.tuning.reconcile_after:g} s old"
        )
    pending = {i["pk"]["S"] for i in pending_failures(offline)} if offline.sweeper else set()
    links = chains(items, offline.sim.created)
    for item in stored_failures(items):
        if failure_decision(item, by_key, links)[2] in ("sent", "gave_up", "claimed"):
            continue
        message = item["pk"]["S"]
        if message in pending:
            lines.append(
                f"failure of {message.removeprefix('MSG#')}: stored, its job not yet taken "
                f"(outbox mark set: the sweeper re-queues it after its grace period)"
            )
    return lines


def log_reasons(log: Path) -> dict[str, str]:
    """message SID → the last warning or error the functions logged about it."""
    reasons: dict[str, str] = {}
    with contextlib.suppress(OSError), log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"level":"WARNING"' not in line and '"level":"ERROR"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            text = entry.get("message", "")
            if entry.get("reason"):
                text += f": {entry['reason']}"
            for key in ("message_sid", "root"):
                if isinstance(entry.get(key), str):
                    reasons[entry[key]] = text
    return reasons
