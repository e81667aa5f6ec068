"""A run's report: what `collect` reads from the stack when a run ends (receipts, attempts, the
DLQ, lost webhooks and what became of them, the invariants) and how `Report.render` prints it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from redeliver.domain.outcome_events import DetailType
from redeliver.domain.receipts import FAILURE_STATUSES
from tools.latency import Latency
from tools.offline.checks import Check, action_of, check_invariants, redeliver_marker
from tools.offline.policy import policy_notes
from tools.offline.stack import Offline
from tools.offline.state import dead_letters, lost_statuses, twilio_truth
from tools.offline.whereabouts import whereabouts
from tools.stack import load_template
from tools.webhook_emitter import Stats, WebhookEmitter

EVENT_TYPES = [t.value for t in DetailType]
TWILIO_WEBHOOK_TIMEOUT_SECONDS = 5  # Twilio gives up on a Conversations webhook after this


@dataclass(frozen=True)
class Settlement:
    settled: bool
    why: str = ""  # when not settled: timed out, interrupted, an error


@dataclass
class Report:
    messages: int
    seconds: float
    webhooks: Stats
    api_answers: Counter[int]
    receipts: Counter[str] = field(default_factory=Counter)
    retries_sent: int = 0
    recovered: int = 0
    gave_up: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)  # failures by the action they took
    dlq: int = 0
    events: Counter[str] = field(default_factory=Counter)  # outcome events by detail-type
    moto_leftovers: int = 0  # stream records of cancelled transactions (tools/pipes.py)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: list[Check] = field(default_factory=list)
    settlement: Settlement = field(default_factory=lambda: Settlement(True))
    unsettled: list[str] = field(default_factory=list)  # what is not done, where, and why
    notes: list[str] = field(default_factory=list)  # departures from the template; moto stalls
    lost: list[str] = field(default_factory=list)  # lost webhooks and what became of them
    sections: list[str] = field(default_factory=list)  # more lines (make chaos)
    latency: Latency | None = None  # failure-to-resend, beside an SQS round trip
    error: str = ""  # the report itself could not be completed: why

    @property
    def violations(self) -> list[str]:
        return [f"{c.name}: {v}" for c in self.checks for v in c.violations]

    @property
    def ok(self) -> bool:
        return self.settlement.settled and not self.violations and not self.error

    @property
    def throughput(self) -> float:
        return sum(self.api_answers.values()) / self.seconds if self.seconds else 0.0

    def actions_line(self) -> str:
        """How many failures took each action of the policy (ACTIONS)."""
        a = self.actions
        return (
            f"  actions         retry {a['retry']} (same content), template {a['template']} "
            f"(ContentSid, no Body), fallback_sms {a['fallback_sms']} (SMS; "
            f"{a['fallback_sms_new']} in a new conversation), suppress {a['suppress']} (then "
            f"{a['recipient_suppressed']} later failure(s) given up recipient_suppressed), "
            f"give_up {a['give_up']}"
        )

    def render(self, title: str = "Redeliver offline") -> str:
        w = self.webhooks
        state = "" if self.settlement.settled else f"  DID NOT SETTLE: {self.settlement.why}"
        lines = [
            f"{title}: {self.messages} messages in {self.seconds:.1f} s{state}",
            f"  webhooks        {w.sent} sent, answers {dict(sorted(self.api_answers.items()))}, "
            f"p50 {w.p50 * 1e3:.1f} ms, p99 {w.percentile(0.99) * 1e3:.1f} ms"
            + (
                f", {slow} answered after Twilio's {TWILIO_WEBHOOK_TIMEOUT_SECONDS} s (offline: "
                "queued behind the one ingest container; Twilio would have given up)"
                if (slow := w.slower_than(TWILIO_WEBHOOK_TIMEOUT_SECONDS))
                else ""
            ),
            f"  throughput      {w.peak_rate():.0f} receipts/s at peak (5 s window); "
            f"{self.throughput:.0f}/s over the run, retry waits included",
            *(self.latency.lines() if self.latency else []),
            f"  receipts        {dict(sorted(self.receipts.items()))}",
            f"  Twilio outcomes {dict(sorted(self.outcomes.items()))}",
            f"  retries sent    {self.retries_sent}, recovered (delivered/read) {self.recovered}",
            f"  given up        {sum(self.gave_up.values())} {dict(sorted(self.gave_up.items()))}",
            self.actions_line(),
            "  outcome events  "
            + ", ".join(f"{kind} {self.events[kind]}" for kind in EVENT_TYPES)
            + " (EventBusName set; published through the emulated pipe"
            + (
                f"; moto's leftover stream records skipped: {self.moto_leftovers}"
                if self.moto_leftovers
                else ""
            )
            + ")",
            f"  DLQ depth       {self.dlq}",
            *self.lost,
            *self.sections,
        ]
        if self.notes:
            lines.append("  notes")
            lines += [f"    - {note}" for note in self.notes]
        if self.error:
            lines.append(f"  REPORT INCOMPLETE: {self.error}")
        if not self.settlement.settled:
            lines.append(f"  not settled ({len(self.unsettled)}):")
            lines += [f"    - {line}" for line in self.unsettled[:30]]
            if len(self.unsettled) > 30:
                lines.append(f"    ... and {len(self.unsettled) - 30} more")
        settled = self.settlement.settled
        if self.checks:
            # Unsettled, a check sees work in flight (a message sent, its record not yet
            # written): what it finds is open, not yet a verdict.
            lines.append("  invariants" + ("" if settled else " (as things stood: not settled)"))
            for check in self.checks:
                verdict = "held  " if check.held else ("BROKEN" if settled else "open  ")
                evidence = f" ({check.evidence})" if check.evidence else ""
                lines.append(f"    {verdict} {check.name}{evidence}")
                lines += [f"             - {v}" for v in check.violations[:10]]
                if len(check.violations) > 10:
                    lines.append(f"             ... and {len(check.violations) - 10} more")
        if self.ok:
            lines.append("  result          every invariant held")
        else:
            broken = sum(not c.held for c in self.checks)
            state = "broken" if settled else "open"
            lines.append(
                "  result          FAILED: "
                + "; ".join(
                    part
                    for part in (
                        "" if self.settlement.settled else "did not settle",
                        f"{broken} invariant(s) {'broken' if settled else 'open'}"
                        if broken
                        else "",
                        "report incomplete" if self.error else "",
                    )
                    if part
                )
            )
        return "\n".join(lines)


def collect(
    offline: Offline,
    emitter: WebhookEmitter,
    messages: int,
    elapsed: float,
    settlement: Settlement | None = None,
) -> Report:
    report = Report(
        messages,
        elapsed,
        emitter.stats,
        offline.api.answers,
        outcomes=emitter.outcomes,
        settlement=settlement or Settlement(True),
        notes=offline.tuning.notes(load_template()) + policy_notes() + moto_stalls(offline.workdir),
    )
    try:
        _collect(offline, report)
    except (KeyboardInterrupt, Exception) as error:  # the report says it
        report.error = f"{type(error).__name__}: {error}"
    return report


def _collect(offline: Offline, report: Report) -> None:
    if offline.pipe is not None:  # what the stream holds now, on the bus
        offline.pipe.pump()
        report.events = Counter(e.detail_type for e in offline.pipe.published)
        report.moto_leftovers = offline.pipe.phantoms + offline.pipe.repeats
    dynamodb = boto3.client("dynamodb")
    items = list(_scan(dynamodb, offline.stack.outputs["ReceiptsTableName"]))
    by_key = {(i["pk"]["S"], i["sk"]["S"]): i for i in items}
    report.receipts = Counter(i["status"]["S"] for i in items if i["sk"]["S"].startswith("RCPT#"))
    attempts = [i for i in items if i["sk"]["S"].startswith("ATTEMPT#")]
    origins = {i["pk"]["S"]: i for i in items if i["sk"]["S"] == "ORIGIN"}
    report.gave_up = Counter(
        i.get("reason", {}).get("S", "?") for i in attempts if i["state"]["S"] == "gave_up"
    )
    report.retries_sent = sum(1 for i in attempts if i["state"]["S"] == "sent")
    report.actions = actions_taken(offline, report.gave_up)
    report.recovered = sum(
        1
        for i in items
        if i["sk"]["S"].startswith("RCPT#")
        and i["pk"]["S"] in origins
        and i["status"]["S"] in ("delivered", "read")
    )
    dead = dead_letters(offline)
    report.dlq = len(dead)
    report.lost = lost_lines(offline, by_key)
    report.checks = check_invariants(offline, items, by_key, dead)
    if not report.settlement.settled:
        report.unsettled = whereabouts(offline, items, by_key, dead)


def lost_lines(offline: Offline, by_key: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """What was lost, and what became of it: the report's lost-webhook and reconciler lines."""
    emitter = offline.emitter
    if emitter is None:
        return []
    dropped = emitter.dropped_by_status
    lines = [
        f"  lost webhooks   {sum(dropped.values()) + len(emitter.lost)}: "
        f"{sum(dropped.values())} lost on the way (rate {emitter.mix.lose_rate:g}) "
        f"{dict(sorted(dropped.items()))}, {len(emitter.lost)} answered 5xx or not at all"
        + (
            f"; onMessageAdded (TrackMessages) {emitter.added_sent} sent, "
            f"{len(emitter.added_dropped)} lost on the way, {len(emitter.added_lost)} answered "
            "5xx or not at all"
            if emitter.added_sent
            else ""
        )
    ]
    truth = twilio_truth(offline)
    lost = lost_statuses(emitter)
    # Receipts whose last status (Twilio's now) never reached ingest by webhook.
    last_lost = {
        key: receipt for key, receipt in truth.items() if (*key, receipt["status"]) in lost
    }
    learned = failures = invisible = unlearned_failures = 0
    for (message, sid), receipt in last_lost.items():
        item = by_key.get((f"MSG#{message}", f"RCPT#{sid}"))
        if item is None:
            invisible += 1
        elif item["status"]["S"] == receipt["status"]:
            learned += 1
            failures += receipt["status"] in FAILURE_STATUSES
        else:
            unlearned_failures += receipt["status"] in FAILURE_STATUSES
    lines.append(
        f"  lost last status {len(last_lost)} receipt(s): {learned} learned all the same "
        f"({failures} failures; asked of Twilio, or stored before ingest died), "
        f"{invisible} invisible (no webhook of theirs arrived: nothing stored), "
        f"{len(last_lost) - learned - invisible} not learned ({unlearned_failures} failures; "
        "the others a read after a delivered: not at sent, never asked about)"
    )
    reconciler = offline.reconciler
    if reconciler is not None:
        totals = reconciler.totals
        lines.append(
            f"  reconciler      every {reconciler.every:g} s: {reconciler.runs} runs, asked "
            f"Twilio about {totals['messages']} message(s), recorded {totals['recorded']} "
            f"receipt(s) (ReconciledReceipts), {totals['failures']} failure(s) "
            f"(ReconciledFailures), left alone {totals['left_alone']}, errors {totals['errors']}"
            + (
                f"; tracked messages: {totals['tracked_received']} had a receipt "
                f"(TrackedReceived), {totals['tracked_reconciled']} had none and were asked "
                "about (TrackedReconciled)"
                if offline.tuning.tracking
                else ""
            )
            + (f", {len(reconciler.errors)} run(s) failed" if reconciler.errors else "")
        )
    else:
        lines.append("  reconciler      off (ReconcileAfterMinutes=0)")
    return lines


def actions_taken(offline: Offline, gave_up: Counter[str]) -> Counter[str]:
    """Failures by the action they took: the sending ones from the messages Twilio holds (one
    per attempt: its invariant), the others from the attempts' give-up reasons."""
    taken: Counter[str] = Counter()
    for message in list(offline.sim.created):
        if not redeliver_marker(message):
            continue
        action = action_of(message)
        taken[action] += 1
        chat = offline.sim.conversations.get(message["conversation_sid"])
        if action == "fallback_sms" and chat and (chat.unique_name or "").startswith("redeliver"):
            taken["fallback_sms_new"] += 1
    taken["suppress"] = gave_up["suppressed"] + gave_up["suppress_no_address"]
    taken["recipient_suppressed"] = gave_up["recipient_suppressed"]
    taken["give_up"] = gave_up["permanent_error"]
    return taken


def moto_stalls(workdir: Path) -> list[str]:
    """moto's requests that took over a second (tools/moto_server --slow-log), summarised."""
    path = workdir / "moto-slow.log"
    try:
        entries = [json.loads(line) for line in path.read_text().splitlines() if line]
    except (OSError, ValueError):
        return []
    if not entries:
        return []
    worst = max(entries, key=lambda e: e["waited"] + e["served"])
    return [
        f"moto was slow: {len(entries)} request(s) took over 1 s; the slowest "
        f"{worst['operation']} waited {worst['waited']} s and took {worst['served']} s"
    ]


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page["Items"]
