"""The command, `python -m tools.chaos`: a chaos run's arguments checked, the stack up, the run,
its report printed; the exit code says whether every invariant held."""

from __future__ import annotations

import argparse
import dataclasses
import signal

from tools.chaos.config import RECONCILE_AFTER_SECONDS, ChaosConfig, TwilioFaults, tuning
from tools.chaos.run import run
from tools.offline.cli import exit_code, port_free, terminated
from tools.offline.stack import running
from tools.stack import ROOT
from tools.webhook_emitter import Mix


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
    add(
        "--no-track-messages",
        action="store_true",
        help="deploy with TrackMessages=false: a receipt none of whose webhooks arrived is "
        "invisible",
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
        track_messages=not args.no_track_messages,
    )
    signal.signal(signal.SIGTERM, terminated)
    print(f"Chaos: moto, template.yaml, Twilio simulator with faults, API on :{args.port} ...")
    with running(args.port, ROOT / ".offline", config.seed, tuning(config)) as offline:
        _, report = run(offline, config, progress=True)
        print(report.render("Redeliver chaos"), flush=True)
        return exit_code(report)
