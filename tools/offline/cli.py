"""The command, `python -m tools.offline`: a scenario and its report, the stack kept running after
it (--serve), or signed webhooks to a deployed stack instead (--target: `load_test`); and what
make chaos's command shares with it (`exit_code`, `port_free`, `terminated`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
import time

from tools.apigw import sign
from tools.offline.report import Report
from tools.offline.scenario import Interrupted, run_scenario
from tools.offline.stack import Offline, running
from tools.offline.tuning import Tuning
from tools.samples import receipt_fields
from tools.stack import ROOT
from tools.twilio_sim.simulator import TwilioSimulator
from tools.webhook_emitter import Mix, WebhookEmitter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.offline",
        description="Run Redeliver offline (moto + a Twilio simulator) and drive a scenario.",
    )
    parser.add_argument("--messages", type=int, default=300, help="messages to send (300)")
    parser.add_argument(
        "--failure-rate", type=float, default=0.2, help="share of messages that fail (0.2)"
    )
    parser.add_argument(
        "--retry-success", type=float, default=0.6, help="share of retries that are delivered (0.6)"
    )
    parser.add_argument("--duplicates", type=float, default=0.05, help="duplicated webhooks")
    parser.add_argument("--reorder", type=float, default=0.1, help="receipts out of order")
    parser.add_argument(
        "--lose-webhooks",
        type=float,
        default=0.03,
        metavar="RATE",
        help="share of webhooks lost on the way, never sent: the reconciler must recover the "
        "failures among them from Twilio's Receipts API (0.03)",
    )
    parser.add_argument(
        "--no-track-messages",
        action="store_true",
        help="deploy with TrackMessages=false: no onMessageAdded, a receipt none of whose "
        "webhooks arrived is invisible",
    )
    parser.add_argument("--seed", type=int, default=7, help="the scenario's random seed (7)")
    parser.add_argument("--port", type=int, default=3000, help="the local API's port (3000)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=110.0,
        help="seconds without progress before the scenario stops unsettled (110)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the stack running after the scenario (Ctrl-C stops it)",
    )
    parser.add_argument(
        "--target",
        metavar="URL",
        help="send signed webhooks to a deployed stack's WebhookUrl instead "
        "(auth token from TWILIO_AUTH_TOKEN); bounded by --messages and --rate",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help="the scenario's messages per second; with --target, most webhooks per second (20)",
    )
    args = parser.parse_args(argv)
    for name in ("failure_rate", "retry_success", "duplicates", "reorder", "lose_webhooks"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.messages < 0:
        parser.error("--messages must be >= 0")
    mix = Mix(
        failure_rate=args.failure_rate,
        retry_success=args.retry_success,
        duplicate_rate=args.duplicates,
        reorder_rate=args.reorder,
        lose_rate=args.lose_webhooks,
    )

    if args.target:
        token = os.environ.get("TWILIO_AUTH_TOKEN", "")
        if not token:
            parser.error("--target needs the auth token in TWILIO_AUTH_TOKEN")
        if not args.target.startswith("https://"):
            parser.error("--target must be the stack's https:// WebhookUrl")
        return load_test(args.target, token, args.messages, rate=args.rate, mix=mix, seed=args.seed)

    # `kill` as well as Ctrl-C stops everything this started (moto is a separate process), after
    # the report.
    signal.signal(signal.SIGTERM, terminated)
    if not port_free(args.port):
        parser.error(
            f"port {args.port} is in use (another offline stack?): choose another with "
            f'--port, e.g. make offline ARGS="--port {args.port + 1}"'
        )
    print(f"Starting moto, deploying template.yaml, Twilio simulator, API on :{args.port} ...")
    tuning = Tuning(track_messages=not args.no_track_messages)
    with running(args.port, ROOT / ".offline", args.seed, tuning) as offline:
        report = run_scenario(
            offline,
            args.messages,
            mix,
            seed=args.seed,
            timeout=args.timeout,
            progress=True,
            rate=args.rate,
        )
        print(report.render(), flush=True)
        if args.serve:
            print("\n" + serve_instructions(offline))
            with contextlib.suppress(KeyboardInterrupt, Interrupted):
                threading.Event().wait()
        return exit_code(report)


def exit_code(report: Report) -> int:
    """0: settled, every invariant held; 130: interrupted; 1: anything else."""
    if report.settlement.why.startswith("interrupted"):
        return 130
    return 0 if report.ok else 1


def terminated(*_: object) -> None:
    raise Interrupted("SIGTERM")


def port_free(port: int) -> bool:
    """Whether our servers can listen on `port`: they bind with SO_REUSEADDR (http.server's
    default), so a port held only by connections in TIME-WAIT (a run just ended) is free."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def serve_instructions(offline: Offline) -> str:
    url = f"{offline.api.url}/twilio/delivery-receipts"
    signed = url.replace("http://", "https://", 1)
    fields = receipt_fields("delivered")
    data = " ".join(f"--data-urlencode '{k}={v}'" for k, v in fields.items())
    signature = sign(signed, fields, offline.token)
    table = offline.stack.outputs["ReceiptsTableName"]
    return (
        f"Redeliver is running offline.\n"
        f"  webhook   POST {url}  (signed for {signed}; auth token {offline.token})\n"
        f"  AWS       {offline.endpoint} (moto)   Twilio {offline.sim.url} (simulator)\n"
        f"  logs      {offline.runtime.log}\n\n"
        f"Try a signed receipt:\n  curl -i -X POST {url} -H 'X-Twilio-Signature: {signature}' "
        f"{data}\n\n"
        f"Look at the table (with the AWS CLI):\n"
        f"  AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline "
        f"aws --endpoint-url {offline.endpoint} --region us-east-1 dynamodb scan "
        f"--table-name {table}\n\nCtrl-C stops it."
    )


def load_test(target: str, token: str, messages: int, *, rate: float, mix: Mix, seed: int) -> int:
    """Signed webhooks to a deployed stack, bounded in count and rate; prints what came back."""
    sim = TwilioSimulator(seed=seed)  # not served: only its message and SID shapes are used
    emitter = WebhookEmitter(
        target, token, mix, seed=seed, max_webhooks=messages * 4, max_rate=rate
    ).start()
    sim.listeners.append(emitter.on_message)
    started = time.monotonic()
    for n in range(messages):
        sim.add_message(sim.add_conversation(name=f"load-{seed}-{n}"))
    while not emitter.idle:
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    emitter.stop()
    stats = emitter.stats
    print(
        f"{stats.sent} webhooks to {target} in {elapsed:.1f} s "
        f"({stats.sent / elapsed:.0f}/s): answers {dict(stats.answers)}, "
        f"no answer {stats.errors}, p50 {stats.p50 * 1e3:.0f} ms, "
        f"p99 {stats.percentile(0.99) * 1e3:.0f} ms"
    )
    return 0 if set(stats.answers) <= {200} and not stats.errors else 1
