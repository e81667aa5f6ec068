"""The whole of Redeliver on one machine: `make offline` (python -m tools.offline --help).

    moto server (own process) ← the real template.yaml, deployed by tools.stack
    local HTTP API :3000      ← the template's HttpApi events → the real ingest handler
    Lambda SQS pollers        ← the template's SQS events → the real retry handler
    Twilio simulator          ← the retry worker's REST calls (TwilioConversationsUrl)
    webhook emitter           → signed onDeliveryUpdated webhooks for every message, to :3000

The handlers are the deployed ones, each in its own process (a Lambda container: one invocation at
a time, its own environment and Powertools singletons): the only difference from AWS is where the
endpoints point. A scenario sends messages "from the app", waits until every failure
is decided, and checks DESIGN.md's invariants; the exit code says whether they held.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import queue
import random
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3

from redeliver.policy import DEFAULT_POLICY_DOCUMENT
from tools.apigw import request_event, sign
from tools.lambdas import FakeContext, import_function
from tools.moto_server import FAKE_CREDENTIALS, moto_server
from tools.samples import receipt_fields
from tools.sqs_poller import poll_once
from tools.stack import ROOT, DeployedStack, create_twilio_secret, deploy, load_template
from tools.twilio_sim import TwilioSimulator
from tools.webhook_emitter import Mix, Stats, WebhookEmitter

STACK = "redeliver-local"
# The default policy's rules with each delay cut 300-fold (a minute becomes a second), so a
# scenario ends in seconds; derived, so the two cannot drift apart.
OFFLINE_POLICY = {
    **DEFAULT_POLICY_DOCUMENT,
    "max_age_seconds": 3600,
    "rules": [
        {**rule, "delays": [max(1, delay // 300) for delay in rule["delays"]]}
        if "delays" in rule
        else dict(rule)
        for rule in DEFAULT_POLICY_DOCUMENT["rules"]
    ],
}
FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_TRACE_DISABLED": "1",
}


# -- the Lambda runtime: the real handlers, one invocation at a time ------------------------------


class FunctionError(RuntimeError):
    """The function raised: Lambda reports an error (API Gateway answers 500, SQS redelivers)."""


class Container:
    """One Lambda container: its own process, environment and Powertools singletons, running one
    invocation at a time."""

    def __init__(self, directory: str, environment: dict[str, str], log: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(
            target=_container_main, args=(directory, environment, str(log), child), daemon=True
        )
        self.process.start()

    def wait_ready(self) -> None:
        """The container's init (imports, clients) is done: its first invocation is warm."""
        ok, value = self._conn.recv()
        if not ok:
            raise FunctionError(f"init failed: {value}")

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self._conn.send(event)
            ok, value = self._conn.recv()
        if not ok:
            raise FunctionError(value)
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


def _container_main(
    directory: str, environment: dict[str, str], log: str, conn: Connection
) -> None:
    os.environ.clear()
    os.environ.update(environment)
    sys.stdout = open(log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long
    try:
        module = import_function(directory)
    except Exception as error:  # an init error, e.g. an invalid RetryPolicy: said, not hidden
        conn.send((False, f"{type(error).__name__}: {error}"))
        return
    conn.send((True, None))
    while (event := conn.recv()) is not None:
        try:
            conn.send((True, module.lambda_handler(event, FakeContext())))
        except Exception as error:  # reported to the caller, as Lambda does
            conn.send((False, f"{type(error).__name__}: {error}"))


class Runtime:
    """The deployed functions, each in its container(s), with its deployed environment.

    One container per function by default, where Lambda would scale out: on two cores more would
    not be faster. (moto itself serves one request at a time, see tools/moto_server, so that its
    conditional writes and transactions are atomic as DynamoDB's are.)
    """

    def __init__(self, stack: DeployedStack, log: Path, http_containers: int = 1) -> None:
        self.log = log
        self._idle: dict[str, queue.Queue[Container]] = {}
        self._all: list[Container] = []
        for logical, resource in load_template()["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            directory = Path(resource["Properties"]["CodeUri"]).name
            environment = {**os.environ, **stack.environment(logical)}
            events = (resource["Properties"].get("Events") or {}).values()
            count = http_containers if any(e["Type"] == "HttpApi" for e in events) else 1
            self._idle[logical] = queue.Queue()
            for _ in range(count):
                container = Container(directory, environment, log)
                self._all.append(container)
                self._idle[logical].put(container)
        for container in self._all:
            container.wait_ready()
        self.invocations: Counter[str] = Counter()

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        self.invocations[function] += 1
        container = self._idle[function].get()
        try:
            return container.invoke(event)
        finally:
            self._idle[function].put(container)

    def stop(self) -> None:
        for container in self._all:
            container.stop()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- API Gateway: the template's HttpApi routes on loopback ---------------------------------------


class LocalApi:
    def __init__(self, runtime: Runtime, port: int) -> None:
        self.routes: dict[tuple[str, str], str] = {}
        for logical, resource in load_template()["Resources"].items():
            for event in (resource.get("Properties", {}).get("Events") or {}).values():
                if event["Type"] == "HttpApi":
                    props = event["Properties"]
                    self.routes[(props["Method"].upper(), props["Path"])] = logical
        self.answers: Counter[int] = Counter()
        self._runtime = runtime
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalApi:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway serves Twilio
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

            def _serve(self) -> None:
                parsed = urlparse(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                function = api.routes.get((self.command, parsed.path))
                if function is None:
                    self._reply(404, b'{"message":"Not Found"}', "application/json")
                    return
                event = request_event(
                    self.command,
                    parsed.path,
                    parsed.query,
                    dict(self.headers.items()),
                    body,
                    domain=self.headers.get("Host", "127.0.0.1"),
                    route_key=f"{self.command} {parsed.path}",
                    source_ip=self.client_address[0],
                )
                try:
                    answer = api._runtime.invoke(function, event)
                except Exception:
                    answer = {"statusCode": 500, "body": '{"message":"Internal Server Error"}'}
                status = int(answer.get("statusCode", 200))
                api.answers[status] += 1
                headers = answer.get("headers") or {}
                self._reply(
                    status,
                    str(answer.get("body") or "").encode(),
                    headers.get("content-type", "text/plain"),
                )

            def _reply(self, status: int, payload: bytes, content_type: str) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client left
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# -- Lambda's SQS pollers: the template's SQS events ---------------------------------------------


class Pollers:
    def __init__(self, runtime: Runtime, stack: DeployedStack) -> None:
        self._runtime = runtime
        self._stack = stack
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(source,), daemon=True)
            for source in stack.sqs_sources
        ]

    def start(self) -> Pollers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, source: Any) -> None:
        sqs = boto3.client("sqs")
        url = self._stack.physical_ids[source.queue]

        def handler(event: dict[str, Any], _: Any) -> Any:
            return self._runtime.invoke(source.function, event)

        while not self._stop.is_set():
            try:
                batch = poll_once(
                    sqs,
                    url,
                    handler,
                    batch_size=source.batch_size,
                    wait_seconds=0,  # short polls: moto serves one request at a time
                    report_batch_item_failures=source.report_batch_item_failures,
                )
            except Exception:
                time.sleep(0.5)
                continue
            if not batch.received:
                self._stop.wait(0.1)


# -- the whole stack ------------------------------------------------------------------------------


@dataclass
class Offline:
    stack: DeployedStack
    runtime: Runtime
    api: LocalApi
    pollers: Pollers
    sim: TwilioSimulator
    token: str
    endpoint: str
    emitter: WebhookEmitter | None = None


@contextlib.contextmanager
def running(port: int, workdir: Path, seed: int) -> Iterator[Offline]:
    """The whole stack, up until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        endpoint = cleanup.enter_context(moto_server())
        cleanup.enter_context(_environment({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}))
        offline = _start(endpoint, port, workdir, seed)
        cleanup.callback(offline.sim.stop)
        cleanup.callback(offline.runtime.stop)
        cleanup.callback(offline.api.stop)
        cleanup.callback(offline.pollers.stop)
        cleanup.callback(lambda: offline.emitter.stop() if offline.emitter else None)
        yield offline


def _start(endpoint: str, port: int, workdir: Path, seed: int) -> Offline:
    sim = TwilioSimulator(seed=seed).start()
    token = secrets.token_hex(16)
    with contextlib.redirect_stderr(io.StringIO()):  # moto's warnings on skipped resources
        stack = deploy(
            STACK,
            {
                "TwilioSecretArn": create_twilio_secret(
                    f"{STACK}/twilio", auth_token=token, account_sid=sim.account_sid
                ),
                "RetryPolicy": json.dumps(OFFLINE_POLICY),
                "TwilioConversationsUrl": sim.url,
                "RetryFollowUpSeconds": "2",
            },
        )
    runtime = Runtime(stack, workdir / "lambda.log")
    api = LocalApi(runtime, port).start()
    pollers = Pollers(runtime, stack).start()
    return Offline(stack, runtime, api, pollers, sim, token, endpoint)


# -- a scenario and its report -------------------------------------------------------------------


@dataclass
class Report:
    messages: int
    seconds: float
    webhooks: Stats
    api_answers: Counter[int]
    receipts: Counter[str]
    retries_sent: int
    recovered: int
    gave_up: Counter[str]
    dlq: int
    outcomes: Counter[str]
    violations: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return sum(self.api_answers.values()) / self.seconds if self.seconds else 0.0

    def render(self) -> str:
        w = self.webhooks
        lines = [
            f"Redeliver offline: {self.messages} messages in {self.seconds:.1f} s",
            f"  webhooks        {w.sent} sent, answers {dict(sorted(self.api_answers.items()))}, "
            f"p50 {w.p50 * 1e3:.1f} ms, p99 {w.percentile(0.99) * 1e3:.1f} ms",
            f"  throughput      {w.peak_rate():.0f} receipts/s at peak (5 s window); "
            f"{self.throughput:.0f}/s over the run, retry waits included",
            f"  receipts        {dict(sorted(self.receipts.items()))}",
            f"  Twilio outcomes {dict(sorted(self.outcomes.items()))}",
            f"  retries sent    {self.retries_sent}, recovered (delivered/read) {self.recovered}",
            f"  given up        {sum(self.gave_up.values())} {dict(sorted(self.gave_up.items()))}",
            f"  DLQ depth       {self.dlq}",
        ]
        if self.violations:
            lines.append(f"  INVARIANTS BROKEN ({len(self.violations)}):")
            lines += [f"    - {v}" for v in self.violations[:20]]
        else:
            lines.append(
                "  invariants      held: one send per attempt, every failure decided, no 5xx"
            )
        return "\n".join(lines)


def run_scenario(
    offline: Offline,
    messages: int,
    mix: Mix,
    *,
    seed: int,
    timeout: float,
    progress: bool,
    rate: float = 50.0,
) -> Report:
    emitter = WebhookEmitter(
        offline.api.url + "/twilio/delivery-receipts",
        offline.token,
        mix,
        seed=seed,
        max_webhooks=messages * 20,
    ).start()
    offline.emitter = emitter
    offline.sim.listeners.append(emitter.on_message)
    rng = random.Random(seed)  # noqa: S311 - a reproducible scenario
    started = time.monotonic()
    for n in range(messages):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))  # the app's own pace
        channel = "whatsapp" if rng.random() < mix.whatsapp_share else "sms"
        conversation = offline.sim.add_conversation(name=f"scenario-{seed}-{n}", channel=channel)
        offline.sim.add_message(
            conversation,
            body=f"Your code is {rng.randint(0, 999_999):06d}",
            author="shop",
            attributes={"order": n},
        )
    _settle(offline, emitter, started, timeout, progress)
    elapsed = time.monotonic() - started
    return collect(offline, emitter, messages, elapsed)


def _settle(
    offline: Offline, emitter: WebhookEmitter, started: float, timeout: float, progress: bool
) -> None:
    """Until nothing is left to do: no webhook to send, no job queued, delayed or in flight."""
    sqs = boto3.client("sqs")
    url = offline.stack.outputs["RetryQueueUrl"]
    quiet = 0
    last_line = 0.0
    while quiet < 3:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the scenario did not settle within {timeout:.0f} s")
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        depth = sum(int(v) for v in attributes.values())  # queued, in flight, delayed
        quiet = quiet + 1 if depth == 0 and emitter.idle else 0
        if progress:
            line = (
                f"  {time.monotonic() - started:5.1f} s  webhooks {emitter.stats.sent:5d}  "
                f"receipts {sum(offline.api.answers.values()):5d}  retry jobs queued "
                f"{depth:3d}  messages resent {len(offline.sim.created):4d}"
            )
            if sys.stdout.isatty():
                print("\r" + line, end="", flush=True)
            elif time.monotonic() - last_line >= 5:
                print(line, flush=True)
                last_line = time.monotonic()
        time.sleep(0.3)
    if progress and sys.stdout.isatty():
        print()


def collect(offline: Offline, emitter: WebhookEmitter, messages: int, elapsed: float) -> Report:
    dynamodb = boto3.client("dynamodb")
    items = list(_scan(dynamodb, offline.stack.outputs["ReceiptsTableName"]))
    by_key = {(i["pk"]["S"], i["sk"]["S"]): i for i in items}
    receipts = Counter(i["status"]["S"] for i in items if i["sk"]["S"].startswith("RCPT#"))
    attempts = [i for i in items if i["sk"]["S"].startswith("ATTEMPT#")]
    origins = {i["pk"]["S"]: i for i in items if i["sk"]["S"] == "ORIGIN"}
    gave_up = Counter(i["reason"]["S"] for i in attempts if i["state"]["S"] == "gave_up")
    recovered = sum(
        1
        for i in items
        if i["sk"]["S"].startswith("RCPT#")
        and i["pk"]["S"] in origins
        and i["status"]["S"] in ("delivered", "read")
    )
    sqs = boto3.client("sqs")
    dlq = int(
        sqs.get_queue_attributes(
            QueueUrl=offline.stack.outputs["RetryDLQUrl"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    report = Report(
        messages,
        elapsed,
        emitter.stats,
        offline.api.answers,
        receipts,
        sum(1 for i in attempts if i["state"]["S"] == "sent"),
        recovered,
        gave_up,
        dlq,
        emitter.outcomes,
    )
    report.violations = check_invariants(offline, items, by_key, origins, dlq)
    return report


def check_invariants(
    offline: Offline,
    items: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    origins: dict[str, dict[str, Any]],
    dlq: int,
) -> list[str]:
    violations = []
    sends: Counter[tuple[str | None, int | None]] = Counter()
    for message in offline.sim.created:
        marker = json.loads(message["attributes"]).get("redeliver", {})
        sends[(marker.get("root"), marker.get("attempt"))] += 1
    violations += [
        f"{count} messages sent for {root} attempt {attempt}"
        for (root, attempt), count in sends.items()
        if count > 1
    ]
    for item in items:
        if not item["sk"]["S"].startswith("RCPT#") or item["status"]["S"] not in (
            "undelivered",
            "failed",
        ):
            continue
        message = item["pk"]["S"]
        origin = origins.get(message)
        root = origin["root"]["S"] if origin else message.removeprefix("MSG#")
        number = int(origin["attempt"]["N"]) + 1 if origin else 1
        attempt = by_key.get((f"MSG#{root}", f"ATTEMPT#{number:03d}"))
        if attempt is None or attempt["state"]["S"] not in ("sent", "gave_up"):
            state = attempt["state"]["S"] if attempt else "nothing"
            violations.append(f"failure of {message} left without a decision ({state})")
    if dlq:
        violations.append(f"{dlq} retry job(s) in the DLQ")
    server_errors = {s: n for s, n in offline.api.answers.items() if s >= 500}
    if server_errors:
        violations.append(f"ingest answered 5xx: {server_errors}")
    if offline.emitter and offline.emitter.stats.errors:
        violations.append(f"{offline.emitter.stats.errors} webhook(s) got no answer")
    return violations


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page["Items"]


# -- against a real deployment ------------------------------------------------------------------


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


# -- the command --------------------------------------------------------------------------------


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


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    parser.add_argument("--seed", type=int, default=7, help="the scenario's random seed (7)")
    parser.add_argument("--port", type=int, default=3000, help="the local API's port (3000)")
    parser.add_argument(
        "--timeout", type=float, default=110.0, help="seconds a scenario may take to settle (110)"
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
        "--rate", type=float, default=20.0, help="with --target: most webhooks per second (20)"
    )
    args = parser.parse_args(argv)
    for name in ("failure_rate", "retry_success", "duplicates", "reorder"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.messages < 0:
        parser.error("--messages must be >= 0")
    mix = Mix(
        failure_rate=args.failure_rate,
        retry_success=args.retry_success,
        duplicate_rate=args.duplicates,
        reorder_rate=args.reorder,
    )

    if args.target:
        token = os.environ.get("TWILIO_AUTH_TOKEN", "")
        if not token:
            parser.error("--target needs the auth token in TWILIO_AUTH_TOKEN")
        if not args.target.startswith("https://"):
            parser.error("--target must be the stack's https:// WebhookUrl")
        return load_test(
            args.target, token, args.messages, rate=args.rate or 20.0, mix=mix, seed=args.seed
        )

    # `kill` as well as Ctrl-C stops everything this started (moto is a separate process).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if not _port_free(args.port):
        parser.error(
            f"port {args.port} is in use (another offline stack?): choose another with "
            f'--port, e.g. make offline ARGS="--port {args.port + 1}"'
        )
    print(f"Starting moto, deploying template.yaml, Twilio simulator, API on :{args.port} ...")
    with running(args.port, ROOT / ".offline", args.seed) as offline:
        report = run_scenario(
            offline,
            args.messages,
            mix,
            seed=args.seed,
            timeout=args.timeout,
            progress=True,
            rate=args.rate or 50.0,
        )
        print(report.render())
        if args.serve:
            print("\n" + serve_instructions(offline))
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
