"""The offline report's latency figures: from a failure webhook to the message that resends it,
beside a bare SQS round trip on the same moto server in the same run.

The two ends of a failure's time, both `time.monotonic()` in the offline stack's own process:

- start: the webhook emitter posts the earliest of a message's failure webhooks (`failed` or
  `undelivered`) that ingest then answered 2xx (tools.webhook_emitter, `failure_posted`): the
  first moment a webhook could have caused the resend. Not the answer: ingest stores the failure
  and queues its job before it answers, so a busy machine can store the resend before the
  emitter reads the answer, and a duplicate's answer can come before the original's;
- end: the Twilio simulator stores the message whose marker says `retry_of` that message
  (tools.twilio_sim, `created_at`): the retry worker's create has reached Twilio.

Only failures whose rule waits 0 s count (the offline policy's template and SMS fallback rules),
so the time is Redeliver's own (ingest, queue hop, poller, container, Twilio lookups, claim,
create), not a delay the policy asked for. A failure with no create (given up, suppressed, its
webhook lost and the failure found later by the sweeper) has no end and is left out. A resend
stored before any failure webhook was posted was not caused by one (the reconciler found the
failure while its webhook was still on the way): it is counted apart, never a negative figure.

The round trip: a probe message sent to a queue of the same moto server, received by the same
polling loop the retry queue's poller runs (short polls, 0.1 s between empty ones); from before
`SendMessage` to the poller handing the record over.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def percentile(values: Iterable[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `share` of them at or
    below it (p50 of 1..10 is 5, p99 of 1..100 is 99); 0.0 when there are none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def retry_of(message: Mapping[str, Any]) -> str | None:
    """The message SID a created message resends (its `redeliver` marker), if any."""
    try:
        attributes = json.loads(message.get("attributes") or "{}")
    except json.JSONDecodeError:
        return None
    marker = attributes.get("redeliver") if isinstance(attributes, dict) else None
    found = marker.get("retry_of") if isinstance(marker, dict) else None
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class Resends:
    """Failure-to-resend figures, and how many resends no webhook can have caused."""

    seconds: list[float]
    before_webhook: int = 0


def failure_to_resend(
    posted: Mapping[str, tuple[float, int | None]],
    created: Iterable[Mapping[str, Any]],
    created_at: Mapping[str, float],
    codes: Iterable[int],
) -> Resends:
    """Seconds from each failure's first accepted webhook post to its resend's create, for
    failures with one of `codes`: one figure per failed message, from its first create (a second
    one would break "one message per attempt", which the report checks on its own). A create
    before the post is not the webhook's doing: counted in `before_webhook`, not a figure."""
    wanted = set(codes)
    first: dict[str, float] = {}
    for message in created:
        failed = retry_of(message)
        at = created_at.get(str(message.get("sid")))
        if failed is None or at is None:
            continue
        first[failed] = min(at, first.get(failed, at))
    paired = [
        first[sid] - start
        for sid, (start, code) in posted.items()
        if code in wanted and sid in first
    ]
    return Resends([s for s in paired if s >= 0], sum(1 for s in paired if s < 0))


def immediate_codes(policy: Mapping[str, Any]) -> list[int]:
    """The error codes whose rule (the first listing them) waits 0 s before every attempt."""
    seen: set[int] = set()
    codes: list[int] = []
    for rule in policy.get("rules", []):
        listed = rule.get("codes")
        if not isinstance(listed, list):
            continue  # "*": every other code, with the default's delays
        delays = rule.get("delays") or []
        for code in listed:
            if code not in seen and delays and all(d == 0 for d in delays):
                codes.append(code)
            seen.add(code)
    return sorted(codes)


@dataclass(frozen=True)
class Latency:
    """The report's line: failure-to-resend and the SQS round trip, p50 and p99."""

    resend: list[float]
    round_trip: list[float]
    codes: list[int]
    before_webhook: int = 0  # resends stored before any failure webhook was posted

    def lines(self) -> list[str]:
        apart = (
            [
                f"  failure→resend  {self.before_webhook} resend(s) stored before any failure "
                "webhook was posted (the reconciler found the failure): left out"
            ]
            if self.before_webhook
            else []
        )
        if not self.resend or not self.round_trip:
            missing = "no failure with a 0 s rule was resent" if not self.resend else "no probe"
            return [f"  failure→resend  not measured: {missing}", *apart]
        r50, r99 = percentile(self.resend, 0.5), percentile(self.resend, 0.99)
        q50, q99 = percentile(self.round_trip, 0.5), percentile(self.round_trip, 0.99)
        codes = ", ".join(str(c) for c in self.codes)
        return [
            f"  failure→resend  p50 {r50 * 1e3:.0f} ms, p99 {r99 * 1e3:.0f} ms over "
            f"{len(self.resend)} failures with a 0 s rule ({codes}): from posting the first "
            "failure webhook ingest accepted to the simulator storing the new message",
            f"  SQS round trip  p50 {q50 * 1e3:.0f} ms, p99 {q99 * 1e3:.0f} ms over "
            f"{len(self.round_trip)} probes (SendMessage to the same poller receiving it, same "
            f"moto); failure→resend is {r50 / q50:.1f}x that at p50, {r99 / q99:.1f}x at p99",
            *apart,
        ]
