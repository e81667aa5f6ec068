"""The chaos part of a run's report (`judge`): the generic "no 5xx" check becomes "none but the
injected kills", the chaos checks join, and the lines of what was injected and lost; `recheck`
computes it all again from the stack as it is now."""

from __future__ import annotations

from collections import Counter

from tools.chaos.checks import forged_check, injected_check
from tools.chaos.config import Chaos
from tools.chaos.kills import ChaosKills
from tools.chaos.twilio import fault_counts
from tools.delivery_webhook import FORGERIES
from tools.offline.checks import no_server_errors
from tools.offline.report import Report, collect
from tools.offline.stack import Offline


def judge(offline: Offline, chaos: Chaos, report: Report) -> Report:
    """The chaos part of the report: what was injected, what was lost, and its checks."""
    try:
        _judge(offline, chaos, report)
    except Exception as error:  # the report still prints what it has
        report.error = report.error or f"{type(error).__name__}: {error}"
    return report


def _judge(offline: Offline, chaos: Chaos, report: Report) -> None:
    runtime, emitter = offline.runtime, offline.emitter
    assert emitter is not None
    kills = list(runtime.kills)
    ingest_kills = sum(1 for k in kills if k.function == "IngestFunction")
    # The generic "no 5xx" check becomes "none but the injected kills".
    report.checks = [c for c in report.checks if not c.name.startswith("no 5xx")] + [
        no_server_errors(offline, killed=ingest_kills),
        forged_check(offline, chaos),
    ]
    report.checks.append(injected_check(offline, chaos))
    plan = offline.tuning.kills
    asked = plan.asked if isinstance(plan, ChaosKills) else {}
    where = Counter(f"{k.function.removesuffix('Function').lower()} {k.where}" for k in kills)
    lines = [
        f"  kills           {len(kills)} of {sum(asked.values())} planned: "
        + (", ".join(f"{n}x {w}" for w, n in sorted(where.items())) or "none"),
    ]
    lines += [
        f"                  {k.at:6.1f} s {k.function} {k.where}: {k.event}" for k in kills[:12]
    ]
    if runtime.timed_out:
        lines.append(
            f"  timed out       {dict(runtime.timed_out)} invocation(s) stopped at their Timeout"
        )
    faults = fault_counts(offline.sim)
    lines.append(
        "  Twilio faults   "
        + (dict(sorted(faults.items())).__repr__() if faults else "none injected")
        + "".join(f"; NOT INJECTED: {m}" for m in chaos.missing)
    )
    created = Counter(m.get("chat_service_sid") for m in offline.sim.created)
    lines.append(
        "  services        "
        + ", ".join(f"{s}: {created.get(s, 0)} retries" for s in chaos.services)
    )
    forged = emitter.forged
    lines.append(
        f"  forged          {forged.sent} sent ({', '.join(FORGERIES)}): answers "
        f"{dict(sorted(forged.answers.items()))}"
        + (f", {forged.errors} unanswered" if forged.errors else "")
    )
    lost = [*emitter.lost, *emitter.added_lost]  # a killed onMessageAdded is lost too
    lines.append(
        f"  5xx webhooks    {len(lost)} answered 5xx or not at all (Twilio does not resend), "
        f"against {ingest_kills} ingest kill(s); lost on the way: {len(emitter.dropped)}"
    )
    lines += [
        f"                  {f.get('MessageSid')} {f.get('Status')} {f.get('ErrorCode')}".rstrip()
        for f in lost[:8]
    ]
    sweeper = offline.sweeper
    if sweeper is not None:
        lines.append(
            f"  sweeper         every {sweeper.every:g} s: {sweeper.runs} runs, "
            f"{sweeper.swept} failure(s) re-queued"
            + (f", {len(sweeper.errors)} run(s) failed" if sweeper.errors else "")
        )
    report.sections = lines


def recheck(offline: Offline, chaos: Chaos, report: Report) -> Report:
    """The report computed again from the stack as it is now (the tests break an invariant on
    purpose and check that the report, and the exit code, say so)."""
    assert offline.emitter is not None
    fresh = collect(offline, offline.emitter, report.messages, report.seconds, report.settlement)
    return judge(offline, chaos, fresh)
