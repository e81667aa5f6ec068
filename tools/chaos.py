"""`make chaos`: the offline stack under faults, and DESIGN.md's invariants checked over the result.

One command (python -m tools.chaos --help) runs the real template, handlers and Twilio's wire
format (tools.offline) while things go wrong as they do in production:

- Twilio answers creates with 429, a 5xx before storing the message, a 5xx *after* storing it, a
  withheld answer past the client's timeout (stored), or refuses the connection — at the rates
  given (the simulator's FaultRates);
- ingest and retry containers are killed mid-invocation (SIGKILL right before one of the
  invocation's AWS calls, as a runtime dying between two steps): SQS redelivers the batch, API
  Gateway answers the webhook 500, and Twilio, which never resends, has lost that webhook;
- webhooks are lost on the way (--lose-webhooks), duplicated and reordered; messages live in two
  Conversation Services; forged
  webhooks (unsigned, signed with another token, altered after signing) arrive among the real
  ones; the outbox sweeper and the reconciler run on short schedules, so a kill between ingest's
  write and its enqueue, and a failure whose webhook was lost, are recovered as in production.

How a lost webhook is accounted for: a webhook is lost for two causes, both counted — lost on the
way (never sent: the emitter's `dropped`, by status) and answered 5xx or not at all (the emitter's
`lost`, listed next to the ingest kills that caused them: ingest may answer 5xx exactly as many
times as it was killed, and not once more). Twilio's truth (the simulator's Receipts) is the
reference for both: every failure Twilio holds must be stored — by its webhook, or by the
reconciler asking Twilio about a receipt stuck at `sent` — and decided. A receipt none of whose
webhooks arrived is invisible to Redeliver (nothing stored, nothing at `sent` to ask about), as it
would be in production: counted in the report, not a violation.

The run exits 0 only when it settled and every invariant held: exactly one new message per
attempt, every failure decided or visible in the DLQ, no 5xx for valid input but the injected
kills, nothing stored for forged input, and every fault asked for injected.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import boto3

from tools import twilio_sim
from tools.offline.checks import Check, no_server_errors
from tools.offline.cli import exit_code, port_free, terminated
from tools.offline.report import Report, collect
from tools.offline.scenario import recipient, run_scenario
from tools.offline.stack import Offline, running
from tools.offline.tuning import KillPlan, KillPoint, Tuning
from tools.samples import receipt_fields, sid
from tools.stack import ROOT
from tools.twilio_sim import TwilioSimulator
from tools.webhook_emitter import FORGERIES, Mix

# Time compressed, as OFFLINE_POLICY's delays are (each is printed in the report's notes):
TWILIO_TIMEOUT_SECONDS = 2  # the retry worker's Twilio read timeout (template: 10)
# RetryFunction's Timeout (template: 60), enforced, and its RETRY_TIMEOUT_SECONDS with it: the
# stale-claim age (timeout + Twilio timeout + margin) that an ambiguous create waits out follows.
# It must leave room for a record (redeliver.usecases.retry.outcomes.record_budget_seconds: 15 s at
# a 2 s Twilio timeout), or the worker starts none.
RETRY_TIMEOUT_SECONDS = 30
VISIBILITY_TIMEOUT = 60  # a killed retry batch is back after this: 2x the Timeout (template: 6x)
# A stored failure with no job is re-queued after this (template: 120). Longer than a job waits in
# the queue's backlog under these faults, or the sweeper re-queues jobs that were never lost.
SWEEP_GRACE_SECONDS = 60
# A receipt at `sent` is looked up after this (template: ReconcileAfterMinutes=30): longer than a
# webhook waits in the emitter's queue behind a slow ingest, so the reconciler asks about lost
# webhooks, not late ones.
RECONCILE_AFTER_SECONDS = 10


@dataclass(frozen=True)
class TwilioFaults:
    """The shares of message creates that fail, by kind: tools.twilio_sim.FaultRates' fields."""

    throttled: float = 0.05  # 429 / 20429: nothing stored
    error_before: float = 0.03  # 503 before the store: nothing stored
    error_after: float = 0.03  # 502 after the store: stored, the client sees a 5xx
    timeout_after: float = 0.02  # stored, the answer withheld past the client's timeout
    refused: float = 0.02  # connection refused: nothing stored

    @property
    def any(self) -> bool:
        return any(dataclasses.astuple(self))


@dataclass
class ChaosConfig:
    messages: int = 1000
    seed: int = 8
    rate: float = 50.0  # the app's messages per second
    timeout: float = 540.0  # seconds without progress before the run stops unsettled
    mix: Mix = field(
        default_factory=lambda: Mix(
            failure_rate=0.35,
            retry_success=0.6,
            duplicate_rate=0.2,
            reorder_rate=0.2,
            lose_rate=0.03,
        )
    )
    faults: TwilioFaults = field(default_factory=TwilioFaults)
    kill_ingest: int = 4
    kill_retry: int = 4
    forged: int = 30
    second_service: float = 0.5  # share of conversations in the second Conversation Service
    sweep_every: float = 5.0
    reconcile_every: float = 5.0
    kill_points: dict[str, tuple[KillPoint, ...]] | None = None  # default: ChaosKills.POINTS


# -- the simulator's fault injection and services (tools/twilio_sim.py) ---------------------------
# The one place that talks to the simulator's FaultRates / set_fault_rates / fault_counts /
# add_service / add_conversation(service=...). A simulator without them runs the rest of the
# chaos and the report says, as a broken check, what it could not inject.


def configure_simulator(sim: TwilioSimulator, config: ChaosConfig) -> tuple[list[str], str | None]:
    """Switch on Twilio's faults and a second Conversation Service. Returns what could not be
    switched on, and the second service's SID (None: one service)."""
    missing = []
    if config.faults.any:
        rates = getattr(twilio_sim, "FaultRates", None)
        set_fault_rates = getattr(sim, "set_fault_rates", None)
        if rates is None or set_fault_rates is None:
            missing.append("Twilio faults: the simulator has no FaultRates/set_fault_rates")
        else:
            set_fault_rates(
                rates(**dataclasses.asdict(config.faults)),
                seed=config.seed,
                timeout_seconds=TWILIO_TIMEOUT_SECONDS,  # the answer comes a second later
            )
    second = None
    if config.second_service > 0:
        add_service = getattr(sim, "add_service", None)
        if add_service is None:
            missing.append("a second Conversation Service: the simulator has no add_service")
        else:
            second = str(add_service("chaos-second"))
    return missing, second


def add_conversation(
    sim: TwilioSimulator, name: str, channel: str, service: str | None, address: str
) -> str:
    if service is None:
        return sim.add_conversation(name=name, channel=channel, address=address)
    add: Any = sim.add_conversation  # service= is the newer simulator's keyword
    return str(add(name=name, channel=channel, service=service, address=address))


def fault_counts(sim: TwilioSimulator) -> Counter[str]:
    return Counter(getattr(sim, "fault_counts", None) or {})


# -- kills -----------------------------------------------------------------------------------------


class ChaosKills(KillPlan):
    """`count` kills per function, at invocations drawn (seeded) from its first `horizon`; each
    kill right before AWS call `point` of that invocation. An invocation that ends before reaching
    its point passes the kill on to the next one.

    Ingest makes one DynamoDB write per receipt, then, for a failure, one SQS send: point 1 kills
    it before the write (the webhook is lost: nothing stored), "sqs.SendMessage" after the write
    and before the enqueue (stored with its outbox mark: the sweeper must queue the job). The
    retry worker's points (its n-th AWS call) fall before or after its claim, its Twilio call and
    its record.
    """

    POINTS: ClassVar[dict[str, tuple[KillPoint, ...]]] = {
        "IngestFunction": (1, "sqs.SendMessage"),
        "RetryFunction": (1, 2, 3, 4, 5, 6),
    }

    def __init__(
        self,
        seed: int,
        plan: dict[str, tuple[int, int]],
        points: dict[str, tuple[KillPoint, ...]] | None = None,
    ) -> None:
        """`plan`: function → (kills, horizon). `points`: function → the kill points to use in
        turn (default: POINTS, in a seeded order)."""
        rng = random.Random(seed)  # noqa: S311 - a reproducible run
        self.asked = {function: count for function, (count, _) in plan.items()}
        self._due: dict[str, list[tuple[int, KillPoint]]] = {}
        for function, (count, horizon) in plan.items():
            first = min(5, horizon)
            picks = sorted(rng.sample(range(first, horizon + 1), min(count, horizon - first + 1)))
            chosen = (points or {}).get(function)
            if not chosen:  # each point in turn, from a seeded start: every kind gets its kill
                chosen = tuple(rng.sample(self.POINTS[function], len(self.POINTS[function])))
            self._due[function] = [(n, chosen[k % len(chosen)]) for k, n in enumerate(picks)]
        self._armed: dict[str, KillPoint] = {}
        self._seen: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        self._lock = threading.Lock()

    def arm(self, function: str) -> KillPoint | None:
        with self._lock:
            self._seen[function] += 1
            due = self._due.get(function)
            if function not in self._armed and due and due[0][0] <= self._seen[function]:
                self._armed[function] = due.pop(0)[1]
            return self._armed.get(function)

    def killed(self, function: str) -> None:
        with self._lock:
            self._armed.pop(function, None)
            self.fired[function] += 1


# -- the run ---------------------------------------------------------------------------------------


def tuning(config: ChaosConfig) -> Tuning:
    messages = max(config.messages, 1)
    return Tuning(
        environment={
            "RetryFunction": {
                "TWILIO_TIMEOUT_SECONDS": str(TWILIO_TIMEOUT_SECONDS),
                "RETRY_TIMEOUT_SECONDS": str(RETRY_TIMEOUT_SECONDS),
            },
            "SweepFunction": {"SWEEP_GRACE_SECONDS": str(SWEEP_GRACE_SECONDS)},
        },
        visibility_timeout=VISIBILITY_TIMEOUT,
        timeouts={"RetryFunction": RETRY_TIMEOUT_SECONDS},
        sweep_every=config.sweep_every,
        reconcile_after=RECONCILE_AFTER_SECONDS,
        reconcile_every=config.reconcile_every,
        kills=ChaosKills(
            config.seed,
            {
                "IngestFunction": (config.kill_ingest, max(10, messages * 2)),
                "RetryFunction": (config.kill_retry, max(10, messages // 5)),
            },
            config.kill_points,
        ),
    )


@dataclass
class Chaos:
    """What the run injected, for the report."""

    config: ChaosConfig
    missing: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)  # the forged webhooks' message SIDs


def send(offline: Offline, chaos: Chaos) -> None:
    """The app's messages over one or two services, with forged webhooks spread among them."""
    config = chaos.config
    rng = random.Random(config.seed)  # noqa: S311 - a reproducible run
    second = chaos.services[1] if len(chaos.services) > 1 else None
    duration = config.messages / config.rate
    emitter = offline.emitter
    assert emitter is not None
    for n in range(config.forged):
        message = f"forged-{config.seed}-{n}"
        fields = {
            **receipt_fields(
                "undelivered",
                message=message,
                receipt=message,
                conversation=message,
                error_code=30003,
                updated=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            ),
            "AccountSid": offline.sim.account_sid,
        }
        chaos.forged.append(sid("IM", message))
        emitter.push_forged(fields, FORGERIES[n % len(FORGERIES)], delay=rng.random() * duration)
    started = time.monotonic()
    for n in range(config.messages):
        time.sleep(max(0.0, started + n / config.rate - time.monotonic()))
        channel = "whatsapp" if rng.random() < config.mix.whatsapp_share else "sms"
        service = second if second and rng.random() < config.second_service else None
        # One recipient per message: a suppression (policy v2) must not silence the others, or
        # the run would exercise no resend at all.
        conversation = add_conversation(
            offline.sim, f"chaos-{config.seed}-{n}", channel, service, recipient(config.seed, n)
        )
        offline.sim.add_message(
            conversation,
            body=f"Your code is {rng.randint(0, 999_999):06d}",
            author="shop",
            attributes={"order": n},
        )


def run(offline: Offline, config: ChaosConfig, *, progress: bool) -> tuple[Chaos, Report]:
    """One chaos run on a running stack: what was injected, and the report."""
    missing, second = configure_simulator(offline.sim, config)
    state = Chaos(config, missing, [offline.sim.chat_service_sid, *([second] if second else [])])
    report = run_scenario(
        offline,
        config.messages,
        config.mix,
        seed=config.seed,
        timeout=config.timeout,
        progress=progress,
        rate=config.rate,
        send=lambda running: send(running, state),
    )
    return state, judge(offline, state, report)


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
    lost = emitter.lost
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


def recheck(offline: Offline, chaos: Chaos, report: Report) -> Report:
    """The report computed again from the stack as it is now (the tests break an invariant on
    purpose and check that the report, and the exit code, say so)."""
    assert offline.emitter is not None
    fresh = collect(offline, offline.emitter, report.messages, report.seconds, report.settlement)
    return judge(offline, chaos, fresh)


# -- the command -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    defaults = ChaosConfig()
    faults = TwilioFaults()
    parser = argparse.ArgumentParser(
        prog="python -m tools.chaos",
        description="Run Redeliver offline under Twilio faults, killed containers, duplicated, "
        "reordered and forged webhooks, in two Conversation Services; check the invariants.",
    )
    add = parser.add_argument
    add("--messages", type=int, default=defaults.messages, help="messages to send (1000)")
    add("--seed", type=int, default=defaults.seed, help="the run's random seed (8)")
    add("--port", type=int, default=3000, help="the local API's port (3000)")
    add(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="seconds without progress before the run stops unsettled (540)",
    )
    add("--rate", type=float, default=defaults.rate, help="the app's messages per second (50)")
    add("--failure-rate", type=float, default=defaults.mix.failure_rate, help="(0.35)")
    add("--retry-success", type=float, default=defaults.mix.retry_success, help="(0.6)")
    add("--duplicates", type=float, default=defaults.mix.duplicate_rate, help="(0.2)")
    add("--reorder", type=float, default=defaults.mix.reorder_rate, help="(0.2)")
    add(
        "--lose-webhooks",
        type=float,
        default=defaults.mix.lose_rate,
        metavar="RATE",
        help="share of webhooks lost on the way, never sent (0.03)",
    )
    for name in ("throttled", "error_before", "error_after", "timeout_after", "refused"):
        add(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(faults, name),
            help=f"share of Twilio creates: {name.replace('_', ' ')} ({getattr(faults, name)})",
        )
    add("--kill-ingest", type=int, default=defaults.kill_ingest, help="ingest kills (4)")
    add("--kill-retry", type=int, default=defaults.kill_retry, help="retry worker kills (4)")
    add("--forged", type=int, default=defaults.forged, help="forged webhooks (30)")
    add(
        "--second-service",
        type=float,
        default=defaults.second_service,
        help="share of conversations in a second Conversation Service (0.5)",
    )
    add("--sweep-every", type=float, default=defaults.sweep_every, help="sweeper period, s (5)")
    add(
        "--reconcile-every",
        type=float,
        default=defaults.reconcile_every,
        help=f"reconciler period, s (5); a receipt at sent is looked up after "
        f"{RECONCILE_AFTER_SECONDS} s",
    )
    args = parser.parse_args(argv)
    shares = (
        "failure_rate",
        "retry_success",
        "duplicates",
        "reorder",
        "lose_webhooks",
        "second_service",
    )
    for name in (*shares, *dataclasses.asdict(TwilioFaults())):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    for name in ("messages", "kill_ingest", "kill_retry", "forged"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.sweep_every <= 0 or args.reconcile_every <= 0 or args.rate <= 0:
        parser.error("--sweep-every, --reconcile-every and --rate must be > 0")
    if not port_free(args.port):
        parser.error(f"port {args.port} is in use: choose another with --port")
    config = ChaosConfig(
        messages=args.messages,
        seed=args.seed,
        rate=args.rate,
        timeout=args.timeout,
        mix=Mix(
            failure_rate=args.failure_rate,
            retry_success=args.retry_success,
            duplicate_rate=args.duplicates,
            reorder_rate=args.reorder,
            lose_rate=args.lose_webhooks,
        ),
        faults=TwilioFaults(
            args.throttled, args.error_before, args.error_after, args.timeout_after, args.refused
        ),
        kill_ingest=args.kill_ingest,
        kill_retry=args.kill_retry,
        forged=args.forged,
        second_service=args.second_service,
        sweep_every=args.sweep_every,
        reconcile_every=args.reconcile_every,
    )
    signal.signal(signal.SIGTERM, terminated)
    print(f"Chaos: moto, template.yaml, Twilio simulator with faults, API on :{args.port} ...")
    with running(args.port, ROOT / ".offline", config.seed, tuning(config)) as offline:
        _, report = run(offline, config, progress=True)
        print(report.render("Redeliver chaos"), flush=True)
        return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
