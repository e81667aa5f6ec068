"""The invariants a chaos run adds to DESIGN.md's (tools.offline.checks): nothing stored for
forged input, and every fault asked for injected (or the run is no evidence)."""

from __future__ import annotations

import boto3

from tools.chaos.config import Chaos
from tools.chaos.kills import ChaosKills
from tools.chaos.twilio import fault_counts
from tools.offline.checks import Check
from tools.offline.stack import Offline


def forged_check(offline: Offline, chaos: Chaos) -> Check:
    """Nothing signed is lost, nothing unsigned is stored: every forged webhook refused with 403
    and no trace of it in the table, the queue or Twilio."""
    check = Check("nothing stored for forged input")
    emitter = offline.emitter
    assert emitter is not None
    refused = emitter.forged.answers.get(403, 0)
    other = {s: n for s, n in emitter.forged.answers.items() if s != 403}
    if other:
        check.violations.append(f"forged webhooks answered {other}, not 403")
    table = offline.stack.outputs["ReceiptsTableName"]
    dynamodb = boto3.client("dynamodb")
    for message in chaos.forged:
        stored = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"MSG#{message}"}},
            ConsistentRead=True,
        )["Items"]
        if stored:
            check.violations.append(f"forged {message}: {len(stored)} item(s) stored")
    resent = [
        m["sid"] for m in offline.sim.created if any(f in m["attributes"] for f in chaos.forged)
    ]
    if resent:
        check.violations.append(f"forged input led to messages {resent[:3]}")
    check.evidence = f"{emitter.forged.sent} forged, {refused} refused with 403"
    return check


def injected_check(offline: Offline, chaos: Chaos) -> Check:
    """The run is only evidence if the faults it was asked for happened."""
    check = Check("every fault asked for was injected", list(chaos.missing))
    plan = offline.tuning.kills
    if isinstance(plan, ChaosKills):
        for function, count in plan.asked.items():
            if count and not plan.fired[function]:
                check.violations.append(f"no {function} kill happened ({count} planned)")
    faults = fault_counts(offline.sim)
    if chaos.config.faults.any and not chaos.missing and not faults:
        check.violations.append("no Twilio fault happened")
    emitter = offline.emitter
    if emitter is None or emitter.forged.sent < chaos.config.forged:
        check.violations.append("not every forged webhook was sent")
    if emitter is not None and chaos.config.mix.lose_rate and not emitter.dropped:
        check.violations.append("no webhook was lost on the way")
    check.evidence = (
        f"{len(offline.runtime.kills)} kills, {sum(faults.values())} Twilio faults, "
        f"{len(chaos.services)} service(s)"
    )
    return check
