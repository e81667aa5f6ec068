"""The whole of Redeliver on one machine: `make offline` (python -m tools.offline --help).

    moto server (own process) ← the real template.yaml, deployed by tools.stack
    local HTTP API :3000      ← the template's HttpApi events → the real ingest handler
    Lambda SQS pollers        ← the template's SQS events → the real retry handler
    schedules                 → SweepFunction and ReconcileFunction, time compressed
    Twilio simulator          ← the retry worker's and the reconciler's REST calls
    webhook emitter           → signed onDeliveryUpdated webhooks for every message, to :3000;
                                some lost on the way (--lose-webhooks), as Twilio never resends

The handlers are the deployed ones, each in its own process (a Lambda container: one invocation at
a time, its own environment and Powertools singletons): the only difference from AWS is where the
endpoints point. A scenario sends messages "from the app", waits until every failure
is decided, and checks DESIGN.md's invariants; the exit code says whether they held. Twilio's
truth (the simulator's Receipts) is the reference: every failure Twilio holds, its webhook lost or
not, must be decided, unless no webhook of its receipt ever arrived (nothing stored: invisible to
Redeliver, as in production).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import multiprocessing
import os
import queue
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3

from redeliver.policy import DEFAULT_POLICY_DOCUMENT
from redeliver.receipts import FAILURE_STATUSES
from redeliver.store import PENDING_INDEX, STUCK_INDEX
from tools.apigw import request_event, sign
from tools.lambdas import FakeContext, import_function
from tools.latency import Latency, failure_to_resend, immediate_codes
from tools.moto_server import FAKE_CREDENTIALS, moto_server
from tools.samples import receipt_fields
from tools.sqs_poller import Batch, poll_forever
from tools.stack import ROOT, DeployedStack, create_twilio_secret, deploy, load_template
from tools.twilio_sim import TwilioSimulator
from tools.webhook_emitter import Mix, Stats, WebhookEmitter

STACK = "redeliver-local"
TWILIO_WEBHOOK_TIMEOUT_SECONDS = 5  # Twilio gives up on a Conversations webhook after this
OFFLINE_ANSWER_TIMEOUT_SECONDS = 120.0  # the offline emitter's wait for ingest's answer
# The scenario's SMS sender: every SMS conversation's proxy number (send_messages), and the
# offline `fallback_sms` rule's `from`, so that a fallback lands in the recipient's SMS
# conversation when it has one.
SMS_FROM = "+15550009999"
# Rules only the offline stack has, ahead of the default's: the default gives 63016 and 63024 up
# (a template needs an approved Content SID, a fallback a sender number, neither of which the
# default can know), so without them a run never shows `template` or `fallback_sms`. The content
# SID is a fake one, known to the simulator only. Said in the report's notes.
OFFLINE_ONLY_RULES: list[dict[str, Any]] = [
    {
        "codes": [63016],
        "action": "template",
        "content_sid": "HX" + "0ff1" * 8,
        "content_variables": {"1": "{body}"},
        "delays": [0],
    },
    {"codes": [63024, 63032], "action": "fallback_sms", "from": SMS_FROM, "delays": [0]},
]
# The default policy's rules with each delay cut 300-fold (a minute becomes a second), so a
# scenario ends in seconds; derived, so the two cannot drift apart.
OFFLINE_POLICY = {
    **DEFAULT_POLICY_DOCUMENT,
    "max_age_seconds": 3600,
    "rules": [
        *OFFLINE_ONLY_RULES,
        *(
            {**rule, "delays": [max(1, delay // 300) for delay in rule["delays"]]}
            if "delays" in rule
            else dict(rule)
            for rule in DEFAULT_POLICY_DOCUMENT["rules"]
        ),
    ],
}
FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_TRACE_DISABLED": "1",
}


# -- where a run departs from the template ------------------------------------------------------


@dataclass
class Tuning:
    """Departures from the deployed template for one run: time compressed, like OFFLINE_POLICY's
    delays, so that a run ends in minutes. Each is said in the report (`notes`)."""

    environment: dict[str, dict[str, str]] = field(default_factory=dict)  # function → overrides
    visibility_timeout: int | None = None  # RetryQueue's VisibilityTimeout, seconds
    sweep_every: float | None = None  # seconds between SweepFunction runs; None: the template's
    kills: KillPlan | None = None  # containers to kill mid-invocation (make chaos)
    # function → its Timeout, in seconds, enforced as Lambda does (the invocation is stopped).
    # Elsewhere the context runs down from the deployed Timeout but nothing stops a late one.
    timeouts: dict[str, float] = field(default_factory=dict)
    # Seconds a receipt may stay at `sent` before ReconcileFunction asks Twilio (None: deployed
    # with ReconcileAfterMinutes=0, no reconciliation). Deployed as 1 minute, the least above 0,
    # with the function's clock this much less than a minute ahead; and how often it runs.
    reconcile_after: float | None = 3.0
    reconcile_every: float = 2.0

    @property
    def clocks(self) -> dict[str, float]:
        """function → seconds its clock runs ahead of the machine's."""
        if self.reconcile_after is None:
            return {}
        return {"ReconcileFunction": 60.0 - self.reconcile_after}

    def notes(self, template: dict[str, Any]) -> list[str]:
        lines = [
            f"{function} Timeout={seconds:g} s, enforced (template: "
            f"{_literal(template['Resources'][function]['Properties'].get('Timeout'), template)})"
            for function, seconds in sorted(self.timeouts.items())
        ]
        for function, values in sorted(self.environment.items()):
            declared = template["Resources"][function]["Properties"]["Environment"]["Variables"]
            lines += [
                f"{function} {name}={value} (template: {_literal(declared.get(name), template)})"
                for name, value in sorted(values.items())
            ]
        if self.visibility_timeout is not None:
            declared = template["Resources"]["RetryQueue"]["Properties"]["VisibilityTimeout"]
            lines.append(
                f"RetryQueue VisibilityTimeout={self.visibility_timeout} (template: {declared})"
            )
        if self.sweep_every is not None:
            lines.append(
                f"SweepFunction every {self.sweep_every:g} s (template: {_schedule(template)})"
            )
        defaults = {name: p.get("Default") for name, p in template["Parameters"].items()}
        if self.reconcile_after is None:
            lines.append(
                "ReconcileAfterMinutes=0: no reconciliation (template default "
                f"{defaults['ReconcileAfterMinutes']})"
            )
        else:
            lines.append(
                f"ReconcileFunction every {self.reconcile_every:g} s (template: every "
                f"ReconcileEveryMinutes={defaults['ReconcileEveryMinutes']} minutes); "
                f"ReconcileAfterMinutes=1 (template default {defaults['ReconcileAfterMinutes']}) "
                f"with its clock {60 - self.reconcile_after:g} s ahead: a receipt at sent is "
                f"looked up after {self.reconcile_after:g} s (one Twilio still reports sent, a "
                "minute after that)"
            )
        return lines


def _literal(value: Any, template: dict[str, Any]) -> str:
    """A template value as written, with `!FindInMap` looked up; None: unset."""
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        mapping, key, name = value["Fn::FindInMap"]
        return str(template["Mappings"][mapping][key][name])
    return "unset" if value is None else str(value)


class KillPlan:
    """Which invocations to kill, and where: `arm(function)` is asked before each invocation and
    answers a kill point (or None): n, "before its n-th AWS call", or "sqs.SendMessage", "before
    its first call of that operation"; `killed` is told when a kill happened. This one kills
    nothing (make chaos plans kills: tools.chaos.ChaosKills)."""

    def arm(self, function: str) -> KillPoint | None:
        return None

    def killed(self, function: str) -> None:
        return None


KillPoint = int | str


@dataclass(frozen=True)
class Kill:
    function: str
    where: str  # "before DynamoDB.UpdateItem (AWS call 1)"
    event: str  # what it was handling
    at: float  # seconds into the run


def _schedule(template: dict[str, Any]) -> str:
    events = template["Resources"]["SweepFunction"]["Properties"].get("Events") or {}
    for event in events.values():
        if event["Type"] == "Schedule":
            return str(event["Properties"]["Schedule"])
    return "none"


def schedule_seconds(expression: str) -> float | None:
    """`rate(5 minutes)` → 300.0; anything else (cron) → None."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if not match:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return float(int(match.group(1)) * unit)


# -- the Lambda runtime: the real handlers, one invocation at a time ------------------------------


class FunctionError(RuntimeError):
    """The function raised: Lambda reports an error (API Gateway answers 500, SQS redelivers)."""


class ContainerGone(FunctionError):
    """The container's process died mid-invocation (killed, crashed, or stopped at its Timeout):
    Lambda's `Runtime.ExitError` or "Task timed out". Its event is lost to it; Lambda starts a new
    container."""


class Container:
    """One Lambda container: its own process, environment and Powertools singletons, running one
    invocation at a time, with the context of a function whose Timeout is `timeout` (`enforced`:
    an invocation still running a second after it is stopped, as Lambda stops it), its clock
    (`time.time`) `clock_ahead` seconds ahead of the machine's (a compressed threshold)."""

    def __init__(
        self,
        directory: str,
        environment: dict[str, str],
        log: Path,
        timeout: float = 3.0,
        enforced: bool = False,
        *,
        clock_ahead: float = 0.0,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self.timeout = timeout
        self.enforced = enforced
        self.process = context.Process(
            target=_container_main,
            args=(directory, environment, str(log), child, clock_ahead),
            daemon=True,
        )
        self.process.start()
        child.close()

    def wait_ready(self) -> None:
        """The container's init (imports, clients) is done: its first invocation is warm."""
        try:
            tag, value = self._conn.recv()
        except (EOFError, OSError):
            raise FunctionError("init failed: the container exited") from None
        if tag != "ok":
            raise FunctionError(f"init failed: {value}")

    def invoke(self, event: dict[str, Any], kill_before: KillPoint | None = None) -> Any:
        """The handler's answer; FunctionError if it raised; ContainerGone if the process died
        (`kill_before`: SIGKILL itself right before that AWS call of this invocation)."""
        with self._lock:
            try:
                self._conn.send((event, self.timeout, kill_before))
                if self.enforced and not self._conn.poll(self.timeout + 1.0):
                    self.process.kill()
                    self.process.join(timeout=5)
                    raise ContainerGone(f"Task timed out after {self.timeout:g} seconds")
                tag, value = self._conn.recv()
            except (EOFError, OSError):
                self.process.join(timeout=5)
                raise ContainerGone(
                    f"Runtime.ExitError: exit code {self.process.exitcode}"
                ) from None
        if tag == "killed":
            self.process.join(timeout=5)
            raise ContainerGone(f"Runtime.ExitError: killed {value}")
        if tag != "ok":
            raise FunctionError(value)
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


def _container_main(
    directory: str, environment: dict[str, str], log: str, conn: Connection, clock_ahead: float
) -> None:
    # Ctrl-C reaches the whole process group: the parent decides when containers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if clock_ahead:  # before the handler's module binds time.time (a default argument, say)
        machine = time.time
        time.time = lambda: machine() + clock_ahead
    os.environ.clear()
    os.environ.update(environment)
    sys.stdout = open(log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long
    # As Lambda's Python runtime does with LoggingConfig: the root logger writes to the log at
    # ApplicationLogLevel, so what libraries log (twilio-python, botocore) lands there too.
    logging.basicConfig(
        stream=sys.stdout, level=environment.get("AWS_LAMBDA_LOG_LEVEL", "INFO"), force=True
    )
    calls = _CallCounter(conn)
    try:
        # Before the handler's module creates its clients: they copy the session's hooks.
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", calls)
        module = import_function(directory)
    except Exception as error:  # an init error, e.g. an invalid RetryPolicy: said, not hidden
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ok", None))
    while (message := conn.recv()) is not None:
        event, timeout, calls.kill_before = message
        calls.made = 0
        try:
            answer = module.lambda_handler(event, FakeContext.for_timeout(timeout))
            conn.send(("ok", answer))
        except Exception as error:  # reported to the caller, as Lambda does
            conn.send(("error", f"{type(error).__name__}: {error}"))


class _CallCounter:
    """botocore's `before-call` hook in a container: counts the invocation's AWS calls and, when
    told to, dies right before one of them, as a container whose runtime is killed."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.made = 0
        self.kill_before: KillPoint | None = None

    def __call__(self, event_name: str = "", **_: Any) -> None:
        self.made += 1
        call = ".".join(event_name.split(".")[1:3])  # before-call.sqs.SendMessage → sqs.SendMessage
        point = self.kill_before
        if (isinstance(point, int) and self.made >= point) or point == call:
            self._conn.send(("killed", f"before {call} (AWS call {self.made})"))
            os.kill(os.getpid(), signal.SIGKILL)


class Runtime:
    """The deployed functions, each in its container(s), with its deployed environment.

    One container per function by default, where Lambda would scale out: on two cores more would
    not be faster. (moto itself serves one request at a time, see tools/moto_server, so that its
    conditional writes and transactions are atomic as DynamoDB's are.) A container that dies is
    replaced by a new one (a cold start), as Lambda does.
    """

    def __init__(
        self,
        stack: DeployedStack,
        log: Path,
        *,
        http_containers: int = 1,
        environment: dict[str, dict[str, str]] | None = None,
        kills: KillPlan | None = None,
        timeouts: dict[str, float] | None = None,
        clocks: dict[str, float] | None = None,
    ) -> None:
        self.log = log
        self.started = time.monotonic()
        self.kills: list[Kill] = []
        self.deaths: Counter[str] = Counter()
        self.timed_out: Counter[str] = Counter()
        self.invocations: Counter[str] = Counter()
        self._plan = kills or KillPlan()
        self._idle: dict[str, queue.Queue[Container]] = {}
        self._all: list[Container] = []
        self._specs: dict[str, tuple[str, dict[str, str], float, bool, float]] = {}
        self._guard = threading.Lock()
        overrides = environment or {}
        template = load_template()
        template_log_level = str(template["Parameters"]["ApplicationLogLevel"]["Default"])
        for logical, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            if logical not in stack.environments:  # its Condition is false: not deployed
                continue
            properties = resource["Properties"]
            directory = Path(properties["CodeUri"]).name
            env = {
                **os.environ,
                # Lambda's own: LoggingConfig's ApplicationLogLevel (the template's default)
                "AWS_LAMBDA_LOG_LEVEL": template_log_level,
                **stack.environment(logical),
                **overrides.get(logical, {}),
            }
            enforced = logical in (timeouts or {})
            timeout = (timeouts or {}).get(logical) or _deployed_timeout(stack, logical)
            ahead = (clocks or {}).get(logical, 0.0)
            self._specs[logical] = (directory, env, timeout, enforced, ahead)
            events = (properties.get("Events") or {}).values()
            count = http_containers if any(e["Type"] == "HttpApi" for e in events) else 1
            self._idle[logical] = queue.Queue()
            for _ in range(count):
                container = self._new(logical)
                self._idle[logical].put(container)
        for container in self._all:
            container.wait_ready()

    def _new(self, function: str) -> Container:
        directory, environment, timeout, enforced, ahead = self._specs[function]
        container = Container(
            directory, environment, self.log, timeout, enforced, clock_ahead=ahead
        )
        with self._guard:
            self._all.append(container)
        return container

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        self.invocations[function] += 1
        container = self._idle[function].get()
        kill_before = self._plan.arm(function)
        try:
            answer = container.invoke(event, kill_before)
        except ContainerGone as gone:
            self.deaths[function] += 1
            if "timed out" in str(gone):
                self.timed_out[function] += 1
            if "killed" in str(gone):
                self._plan.killed(function)
                where = str(gone).split("killed ", 1)[1]
                self.kills.append(
                    Kill(function, where, describe_event(event), time.monotonic() - self.started)
                )
            threading.Thread(target=self._replace, args=(function,), daemon=True).start()
            raise
        except BaseException:
            self._idle[function].put(container)
            raise
        self._idle[function].put(container)
        return answer

    def _replace(self, function: str) -> None:
        """A new container for a dead one, ready for the next invocation (a cold start)."""
        container = self._new(function)
        with contextlib.suppress(FunctionError):
            container.wait_ready()
        self._idle[function].put(container)

    def stop(self) -> None:
        with self._guard:
            containers = list(self._all)
        for container in containers:
            container.stop()


def _deployed_timeout(stack: DeployedStack, function: str) -> float:
    """The function's Timeout as deployed (the template may take it from Globals or a Mapping)."""
    name = stack.physical_ids[function]
    configuration = boto3.client("lambda").get_function_configuration(FunctionName=name)
    return float(configuration.get("Timeout") or 3)


def describe_event(event: dict[str, Any]) -> str:
    """What an invocation was handling, in SIDs: a webhook's receipt, a batch's jobs."""
    if "Records" in event:
        return "jobs " + ", ".join(describe_job(r.get("body", "")) for r in event["Records"])
    if "body" in event:
        body = event["body"]
        with contextlib.suppress(ValueError):
            if event.get("isBase64Encoded"):
                body = base64.b64decode(body).decode()
        fields = {k: v[0] for k, v in parse_qs(str(body)).items()}
        return (
            f"webhook {fields.get('MessageSid', '?')} {fields.get('Status', '?')}"
            f" {fields.get('ErrorCode', '')}".rstrip()
        )
    return "scheduled event"


def describe_job(body: str) -> str:
    """A retry job in SIDs (read loosely: a report must not fail on a job it cannot parse)."""
    try:
        job = json.loads(body)
    except ValueError:
        return "unparseable job"
    if not isinstance(job, dict):
        return "unparseable job"
    if job.get("kind") == "follow_up":
        return (
            f"follow-up of {job.get('message_sid')} "
            f"(root {job.get('root')}, attempt {job.get('attempt')})"
        )
    event = job.get("event") or {}
    code = event.get("error_code")
    return f"{event.get('message_sid')} {event.get('status')}{f' {code}' if code else ''}"


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


@dataclass
class Job:
    """A retry job as the poller saw it: what it is, how often it was received, where it is."""

    summary: str
    receives: int = 0
    state: str = "in the handler"  # | "back to the queue" | "done"
    since: float = 0.0  # time.monotonic() of the last change
    error: str = ""  # the invocation's error, when it failed as a whole


class JobBook:
    """Every job the pollers received and what became of it: the report's "where is it"."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.poll_errors: Counter[str] = Counter()

    def received(self, records: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        with self._lock:
            for record in records:
                job = self._jobs.setdefault(record["messageId"], Job(describe_job(record["body"])))
                job.receives += 1
                job.state, job.since, job.error = "in the handler", now, ""

    def finished(self, batch: Batch) -> None:
        now = time.monotonic()
        with self._lock:
            for message_id in batch.handles:
                job = self._jobs[message_id]
                job.state, job.since, job.error = "back to the queue", now, batch.error
            for message_id, job in self._jobs.items():
                if job.state == "in the handler" and message_id not in batch.handles:
                    job.state, job.since = "done", now

    def open(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.state != "done"]


class Pollers:
    def __init__(self, runtime: Runtime, stack: DeployedStack) -> None:
        self._runtime = runtime
        self._stack = stack
        self._stop = threading.Event()
        self.book = JobBook()
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
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

        def handler(event: dict[str, Any], _: Any) -> Any:
            self.book.received(event["Records"])
            return self._runtime.invoke(source.function, event)

        def failed_poll(error: Exception) -> None:  # moto unreachable: said in the report
            self.book.poll_errors[type(error).__name__] += 1

        poll_forever(
            sqs,
            url,
            handler,
            self._stop,
            queue_arn=arn,
            batch_size=source.batch_size,
            report_batch_item_failures=source.report_batch_item_failures,
            on_batch=self.book.finished,
            on_error=failed_poll,
        )


class RoundTripProbe:
    """A bare SQS round trip on the stack's moto, while a scenario runs: a probe message every
    `every` seconds to a queue of its own, received by the pollers' own loop (poll_forever);
    each sample is from before SendMessage to the record handed to the handler. The report
    sets the failure-to-resend time beside it (tools.latency)."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.samples: list[float] = []
        self.errors = 0
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> RoundTripProbe:
        # Clients made here: boto3's default session is not safe to make clients from threads.
        sender, receiver = boto3.client("sqs"), boto3.client("sqs")
        url = sender.create_queue(QueueName=f"{STACK}-round-trip-probe")["QueueUrl"]
        arn = sender.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._threads = [
            threading.Thread(target=self._send_loop, args=(sender, url), daemon=True),
            threading.Thread(
                target=poll_forever,
                args=(receiver, url, self._received, self._stop),
                kwargs={"queue_arn": arn, "on_error": self._failed},
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _send_loop(self, sqs: Any, url: str) -> None:
        n = 0
        while not self._stop.wait(self.every):
            body, n = f"probe-{n}", n + 1
            with self._lock:
                self._sent[body] = time.monotonic()
            try:
                sqs.send_message(QueueUrl=url, MessageBody=body)
            except Exception:  # moto unreachable: no sample, counted
                self._failed(None)
                with self._lock:
                    self._sent.pop(body, None)

    def _received(self, event: dict[str, Any], _: Any) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            for record in event["Records"]:
                sent = self._sent.pop(record["body"], None)
                if sent is not None:
                    self.samples.append(now - sent)
        return {"batchItemFailures": []}

    def _failed(self, _: Exception | None) -> None:
        with self._lock:
            self.errors += 1


class Scheduler:
    """EventBridge Scheduler's `Schedule` event: the sweeper or the reconciler, every `every`
    seconds; `totals` sums the numbers its answers carry (swept; recorded, failures, ...)."""

    def __init__(self, runtime: Runtime, function: str, every: float) -> None:
        self._runtime = runtime
        self._function = function
        self.every = every
        self.runs = 0
        self.totals: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            event = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
            try:
                answer = self._runtime.invoke(self._function, event)
            except FunctionError as error:
                self.errors.append(str(error))
                continue
            self.runs += 1
            for name, value in (answer or {}).items():
                if isinstance(value, int):
                    self.totals[name] += value

    @property
    def swept(self) -> int:
        return self.totals["swept"]


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
    workdir: Path
    tuning: Tuning = field(default_factory=Tuning)
    sweeper: Scheduler | None = None
    emitter: WebhookEmitter | None = None
    reconciler: Scheduler | None = None
    # message SID -> its non-chat recipients when Twilio stored it (the group-send check)
    recipients_at_create: dict[str, int] = field(default_factory=dict)

    def note_recipients(self, message: dict[str, Any], _channel: str, recipients: int) -> None:
        self.recipients_at_create[str(message["sid"])] = recipients


@contextlib.contextmanager
def running(port: int, workdir: Path, seed: int, tuning: Tuning | None = None) -> Iterator[Offline]:
    """The whole stack, up until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        endpoint = cleanup.enter_context(moto_server(workdir / "moto-slow.log"))
        cleanup.enter_context(_environment({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}))
        offline = _start(endpoint, port, workdir, seed, tuning or Tuning())
        cleanup.callback(offline.sim.stop)
        cleanup.callback(offline.runtime.stop)
        cleanup.callback(offline.api.stop)
        cleanup.callback(offline.pollers.stop)
        cleanup.callback(lambda: offline.sweeper.stop() if offline.sweeper else None)
        cleanup.callback(lambda: offline.reconciler.stop() if offline.reconciler else None)
        cleanup.callback(lambda: offline.emitter.stop() if offline.emitter else None)
        yield offline


def _start(endpoint: str, port: int, workdir: Path, seed: int, tuning: Tuning) -> Offline:
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
                # 1 minute, the least that is on; the function's clock runs ahead (Tuning)
                "ReconcileAfterMinutes": "0" if tuning.reconcile_after is None else "1",
                "ReconcileEveryMinutes": "1",
            },
        )
    if tuning.visibility_timeout is not None:
        boto3.client("sqs").set_queue_attributes(
            QueueUrl=stack.outputs["RetryQueueUrl"],
            Attributes={"VisibilityTimeout": str(tuning.visibility_timeout)},
        )
    (workdir / "moto-slow.log").unlink(missing_ok=True)  # the deploy's slow requests are no news
    log = workdir / "lambda.log"
    log.unlink(missing_ok=True)  # this run's lines only: the report reads reasons from it
    runtime = Runtime(
        stack,
        log,
        environment=tuning.environment,
        kills=tuning.kills,
        timeouts=tuning.timeouts,
        clocks=tuning.clocks,
    )
    api = LocalApi(runtime, port).start()
    pollers = Pollers(runtime, stack).start()
    every = tuning.sweep_every or schedule_seconds(_schedule(load_template()))
    sweeper = Scheduler(runtime, "SweepFunction", every).start() if every else None
    reconciler = (
        Scheduler(runtime, "ReconcileFunction", tuning.reconcile_every).start()
        if tuning.reconcile_after is not None
        else None
    )
    offline = Offline(
        stack,
        runtime,
        api,
        pollers,
        sim,
        token,
        endpoint,
        workdir,
        tuning,
        sweeper,
        reconciler=reconciler,
    )
    sim.listeners.append(offline.note_recipients)
    return offline


# -- a scenario and its report -------------------------------------------------------------------


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the report is still printed."""


@dataclass(frozen=True)
class Settlement:
    settled: bool
    why: str = ""  # when not settled: timed out, interrupted, an error


@dataclass
class Check:
    """One invariant of DESIGN.md, as the run's data shows it."""

    name: str
    violations: list[str] = field(default_factory=list)
    evidence: str = ""  # what it was checked over

    @property
    def held(self) -> bool:
        return not self.violations


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


def recipient(seed: int, person: int) -> str:
    """A scenario's n-th recipient's phone number (E.164), its own per seed: a stack shared by
    scenarios (the e2e tests) does not carry one scenario's suppressions into the next."""
    return f"+1555{seed % 100:02d}{person:05d}"


def send_messages(offline: Offline, messages: int, mix: Mix, *, seed: int, rate: float) -> None:
    """The app's own messages, at its own pace, to a few recipients each written to several times
    (a suppressed one's later failures then give up `recipient_suppressed`), on WhatsApp or SMS:
    one conversation per recipient and channel, with the SMS ones through SMS_FROM (where an SMS
    fallback finds them)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible scenario
    people = max(2, messages // 4)
    conversations: dict[tuple[int, str], str] = {}
    started = time.monotonic()
    for n in range(messages):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        channel = "whatsapp" if rng.random() < mix.whatsapp_share else "sms"
        person = rng.randrange(people)
        conversation = conversations.get((person, channel))
        if conversation is None:
            conversation = conversations[(person, channel)] = offline.sim.add_conversation(
                name=f"scenario-{seed}-{channel}-{person}",
                channel=channel,
                address=recipient(seed, person),
            )
        offline.sim.add_message(
            conversation,
            body=f"Your code is {rng.randint(0, 999_999):06d}",
            author="shop",
            attributes={"order": n},
        )


def run_scenario(
    offline: Offline,
    messages: int,
    mix: Mix,
    *,
    seed: int,
    timeout: float,
    progress: bool,
    rate: float = 50.0,
    send: Callable[[Offline], None] | None = None,
) -> Report:
    """Messages in, until everything settles; a report whatever happens (a timeout, an error,
    Ctrl-C): it says what did not settle, where it is and why. `send` replaces the app's
    messages (make chaos sends its own)."""
    emitter = WebhookEmitter(
        offline.api.url + "/twilio/delivery-receipts",
        offline.token,
        mix,
        seed=seed,
        max_webhooks=max(messages, 50) * 20,  # a bound, with room for retries' receipts
        twilio=offline.sim,  # Twilio's truth for its Receipts API, lost webhook or not
        # Offline, one ingest container serves every post in turn (Lambda would start another),
        # so on a busy machine a post can queue behind a cold start for longer than Twilio's
        # 5 s: that is the emulator's speed, not ingest's, and the report counts such answers
        # apart. A post still unanswered after this is lost; one that never ends is caught by
        # the run's own deadline, which says it is still in flight.
        answer_timeout=OFFLINE_ANSWER_TIMEOUT_SECONDS,
    ).start()
    offline.emitter = emitter
    offline.sim.listeners.append(emitter.on_message)
    probe = RoundTripProbe().start()
    started = time.monotonic()
    try:
        if send is None:
            send_messages(offline, messages, mix, seed=seed, rate=rate)
        else:
            send(offline)
        settlement = _settle(offline, emitter, started, timeout, progress)
    except (KeyboardInterrupt, Interrupted) as stop:
        settlement = Settlement(False, f"interrupted ({type(stop).__name__})")
    except Exception as error:  # a report is still owed: what failed, and what was done
        traceback.print_exc(file=sys.stderr)
        settlement = Settlement(False, f"the run failed: {type(error).__name__}: {error}")
    elapsed = time.monotonic() - started
    emitter.stop()
    probe.stop()
    if progress and sys.stdout.isatty():
        print()
    report = collect(offline, emitter, messages, elapsed, settlement)
    codes = immediate_codes(OFFLINE_POLICY)
    resends = failure_to_resend(
        emitter.failure_posted, list(offline.sim.created), offline.sim.created_at, codes
    )
    report.latency = Latency(
        resends.seconds, list(probe.samples), codes, before_webhook=resends.before_webhook
    )
    return report


def _settle(
    offline: Offline, emitter: WebhookEmitter, started: float, timeout: float, progress: bool
) -> Settlement:
    """Until nothing is left to do: no webhook to send, no job queued, delayed or in flight and,
    when the sweeper runs, no failure waiting for it.

    `timeout` counts from the last progress (a webhook answered, a retry or ingest invocation,
    a message created), not from the start: a busy machine is slower, not stuck, and a run that
    keeps moving is not cut short. A run that moves for longer than `SETTLE_CAP` timeouts in all
    is stopped all the same (a livelock moves too)."""
    sqs = boto3.client("sqs")
    url = offline.stack.outputs["RetryQueueUrl"]
    quiet = 0
    last_line = 0.0
    moved, moved_at = _progress(offline), started
    while True:
        now = time.monotonic()
        if (current := _progress(offline)) != moved:
            moved, moved_at = current, now
        if now - moved_at > timeout:
            return Settlement(False, f"not done within --timeout {timeout:.0f} s of no progress")
        if now - started > timeout * SETTLE_CAP:
            return Settlement(
                False, f"not done within {SETTLE_CAP} x --timeout {timeout:.0f} s, still moving"
            )
        depth = sum(_queue_depth(sqs, url).values())  # queued, in flight, delayed
        quiet = quiet + 1 if depth == 0 and emitter.idle else 0
        if quiet >= 3:
            if (offline.sweeper is None or not pending_failures(offline)) and (
                not reconciling(offline) or not stuck_receipts(offline)
            ):
                return Settlement(True)
            quiet = 0
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
        time.sleep(0.3 if quiet else 1.0)


SETTLE_CAP = 5  # a run that keeps moving is stopped after this many timeouts in all


def _progress(offline: Offline) -> tuple[int, int, int]:
    """What moves while a run makes progress: answers, the work functions' invocations (the
    schedulers' runs are not progress: they run on a clock), the messages created."""
    invocations = offline.runtime.invocations
    return (
        sum(offline.api.answers.values()),
        invocations["RetryFunction"] + invocations["IngestFunction"],
        len(offline.sim.created),
    )


def _queue_depth(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {name: int(value) for name, value in attributes.items()}


def pending_failures(offline: Offline) -> list[dict[str, Any]]:
    """Failures still carrying the outbox mark: stored, not yet taken by the worker."""
    dynamodb = boto3.client("dynamodb")
    table = offline.stack.outputs["ReceiptsTableName"]
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, IndexName=PENDING_INDEX)
    return [item for page in pages for item in page["Items"]]


def reconciling(offline: Offline) -> bool:
    return offline.reconciler is not None and not offline.reconciler.stopped


def stuck_receipts(offline: Offline) -> list[dict[str, Any]]:
    """Receipts whose latest status is `sent` (the reconciler's index): each is looked up once
    it is older than the threshold, and leaves the index when Twilio reports it further."""
    dynamodb = boto3.client("dynamodb")
    table = offline.stack.outputs["ReceiptsTableName"]
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, IndexName=STUCK_INDEX)
    return [item for page in pages for item in page["Items"]]


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


def dead_letters(offline: Offline) -> list[str]:
    """The bodies in the DLQ, looked at without taking them (visibility 0)."""
    sqs = boto3.client("sqs")
    url = offline.stack.outputs["RetryDLQUrl"]
    depth = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    bodies: dict[str, str] = {}
    for _ in range(depth // 10 + 3):
        if len(bodies) >= depth:
            break
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies.update({m["MessageId"]: m["Body"] for m in answer.get("Messages", [])})
    return list(bodies.values()) + [""] * max(0, depth - len(bodies))


def chains(
    items: list[dict[str, Any]], created: list[dict[str, Any]]
) -> dict[str, tuple[str, int]]:
    """Message key → (root, which attempt it is) for every retry: from its ORIGIN link, else from
    the marker Twilio holds in its attributes (a worker can die between create and record)."""
    known: dict[str, tuple[str, int]] = {}
    for message in created:
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            marker = json.loads(message.get("attributes") or "{}")["redeliver"]
            known[f"MSG#{message['sid']}"] = (str(marker["root"]), int(marker["attempt"]))
    for item in items:
        if item["sk"]["S"] == "ORIGIN":
            known[item["pk"]["S"]] = (item["root"]["S"], int(item["attempt"]["N"]))
    return known


def _failure_decision(
    item: dict[str, Any],
    by_key: dict[tuple[str, str], dict[str, Any]],
    links: dict[str, tuple[str, int]],
) -> tuple[str, int, str | None]:
    """(root, attempt, its state) of the attempt that decides a failure receipt (state None: no
    attempt item)."""
    message = item["pk"]["S"]
    root, number = links.get(message, (message.removeprefix("MSG#"), 0))
    attempt = by_key.get((f"MSG#{root}", f"ATTEMPT#{number + 1:03d}"))
    return root, number + 1, attempt["state"]["S"] if attempt else None


def _failures(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        i
        for i in items
        if i["sk"]["S"].startswith("RCPT#") and i["status"]["S"] in ("undelivered", "failed")
    ]


def check_invariants(
    offline: Offline,
    items: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    dead: list[str],
) -> list[Check]:
    links = chains(items, offline.sim.created)
    emitter = offline.emitter
    return [
        one_message_per_attempt(offline.sim.created, items),
        failures_decided(
            items,
            by_key,
            links,
            dead,
            truth=twilio_truth(offline),
            reached=set(emitter.reached) if emitter else set(),
            lost=lost_statuses(emitter) if emitter else set(),
        ),
        no_server_errors(offline),
        actions_as_configured(offline),
        no_group_sends(offline),
        no_phone_numbers_logged(offline.runtime.log),
    ]


Receipt = tuple[str, str]  # (message SID, receipt SID)


def twilio_truth(offline: Offline) -> dict[Receipt, dict[str, Any]]:
    """Every receipt as Twilio's Receipts API reports it now (the simulator's)."""
    return {
        (message, receipt["sid"]): dict(receipt)
        for message, receipts in list(offline.sim.receipts.items())
        for receipt in list(receipts)
    }


def lost_statuses(emitter: WebhookEmitter) -> set[tuple[str, str, str]]:
    """(message, receipt, status) of every genuine webhook that never reached ingest: lost on the
    way, answered 5xx, or not answered."""
    webhooks = [*emitter.dropped, *emitter.lost]
    return {(f["MessageSid"], f["DeliveryReceiptSid"], f["Status"]) for f in webhooks}


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
            + (f", {len(reconciler.errors)} run(s) failed" if reconciler.errors else "")
        )
    else:
        lines.append("  reconciler      off (ReconcileAfterMinutes=0)")
    return lines


def policy_notes() -> list[str]:
    """Where the offline policy departs from the default's, beyond its compressed delays."""
    template, fallback = OFFLINE_ONLY_RULES
    return [
        f"offline-only rules, ahead of the default's: {template['codes']} template "
        f"{template['content_sid']} (a fake Content SID, known to the simulator only), "
        f"{fallback['codes']} fallback_sms from {fallback['from']}; the default policy gives "
        "these codes up",
        "quiet hours not exercised: a window is wall-clock time in the recipient's zone and "
        "cannot be compressed (a run would wait until the window's end, hours away)",
    ]


def _marker(message: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        marker = json.loads(message.get("attributes") or "{}").get("redeliver")
        if isinstance(marker, dict):
            return marker
    return {}


def action_of(message: dict[str, Any]) -> str:
    """How a message Redeliver created was sent: `fallback_sms`, `template` or `retry`."""
    if _marker(message).get("channel") == "sms":
        return "fallback_sms"
    return "template" if message.get("content_sid") else "retry"


def actions_taken(offline: Offline, gave_up: Counter[str]) -> Counter[str]:
    """Failures by the action they took: the sending ones from the messages Twilio holds (one
    per attempt: its invariant), the others from the attempts' give-up reasons."""
    taken: Counter[str] = Counter()
    for message in list(offline.sim.created):
        if not _marker(message):
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


def actions_as_configured(offline: Offline) -> Check:
    """Each message Redeliver created is what its action says: a template carries the rule's
    ContentSid and no Body; an SMS fallback goes to the original's recipient, by SMS, from the
    rule's number."""
    check = Check("each resend as its action says")
    template, fallback = OFFLINE_ONLY_RULES
    conversation_of = {
        message: receipts[0]["conversation_sid"]
        for message, receipts in list(offline.sim.receipts.items())
        if receipts
    }
    counted = 0
    for message in list(offline.sim.created):
        marker = _marker(message)
        action = action_of(message)
        if not marker or action == "retry":
            continue
        counted += 1
        if action == "template":
            if message.get("content_sid") != template["content_sid"] or message.get("body"):
                check.violations.append(
                    f"{message['sid']} (template) has ContentSid {message.get('content_sid')} "
                    f"and Body {message.get('body')!r}"
                )
            continue
        root = offline.sim.conversations.get(conversation_of.get(str(marker.get("root")), ""))
        chat = offline.sim.conversations.get(message["conversation_sid"])
        wanted = {
            str(p["messaging_binding"]["address"]).removeprefix("whatsapp:")
            for p in (root.participants if root else [])
            if p["messaging_binding"]
        }
        bindings = [p["messaging_binding"] for p in (chat.participants if chat else [])]
        if not any(
            b and b["type"] == "sms" and b["address"] in wanted and b["proxy_address"] == SMS_FROM
            for b in bindings
        ):
            check.violations.append(
                f"{message['sid']} (fallback_sms for {marker.get('root')}, to {sorted(wanted)}) "
                f"is in a conversation without that SMS recipient from {fallback['from']}"
            )
    check.evidence = f"{counted} template and SMS-fallback message(s)"
    return check


# An E.164 number as a log line could carry it: plain, or URL-encoded in a query (%2B...).
E164 = re.compile(r"(?<![\w%])(?:\+|%2B)[1-9]\d{7,14}(?!\d)", re.IGNORECASE)


def no_phone_numbers_logged(log: Path) -> Check:
    """No line any function logged carries a phone number (invariant 7): not ours, and not what
    libraries log for us (the containers' root logger writes at ApplicationLogLevel, as Lambda's
    does)."""
    check = Check("no phone number in any function's log")
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    leaks = [line for line in lines if E164.search(line)]
    for line in leaks[:5]:
        check.violations.append(f"logged: {line[:160]}")
    if len(leaks) > 5:
        check.violations.append(f"... and {len(leaks) - 5} more line(s)")
    check.evidence = f"{len(lines)} lines read"
    return check


def no_group_sends(offline: Offline) -> Check:
    """No new message went into a conversation with more than one non-chat recipient (invariant
    5): counted as Twilio stored it, at the moment of the create."""
    check = Check("no new message in a group conversation")
    created = {str(m["sid"]) for m in offline.sim.created}
    at_create = {sid: n for sid, n in offline.recipients_at_create.items() if sid in created}
    for sid, recipients in sorted(at_create.items()):
        if recipients > 1:
            check.violations.append(f"{sid} went to {recipients} recipients")
    check.evidence = f"{len(at_create)} new message(s)"
    return check


def one_message_per_attempt(created: list[dict[str, Any]], items: list[dict[str, Any]]) -> Check:
    """Exactly one new message per (root, attempt): none doubled, and every message Twilio stored
    is the one its attempt records as sent (a message out for an attempt recorded given up, or
    still claimed, is a send nobody knows of)."""
    check = Check("exactly one new message per attempt")
    sends: dict[tuple[str | None, int | None], list[str]] = {}
    for message in created:
        try:
            marker = json.loads(message.get("attributes") or "{}").get("redeliver", {})
        except ValueError:
            marker = {}
        sends.setdefault((marker.get("root"), marker.get("attempt")), []).append(message["sid"])
    attempts = {
        (i["pk"]["S"].removeprefix("MSG#"), int(i["sk"]["S"].removeprefix("ATTEMPT#"))): i
        for i in items
        if i["sk"]["S"].startswith("ATTEMPT#")
    }
    for (root, number), sids in sorted(sends.items(), key=str):
        if len(sids) > 1:
            check.violations.append(f"{len(sids)} messages sent for {root} attempt {number}")
            continue
        attempt = attempts.get((str(root), int(number or 0)))
        state = attempt["state"]["S"] if attempt else "no attempt item"
        recorded = attempt.get("new_message_sid", {}).get("S") if attempt else None
        if state != "sent" or recorded != sids[0]:
            check.violations.append(
                f"{sids[0]} went out for {root} attempt {number}, recorded as {state}"
                + (f" with {recorded}" if recorded and recorded != sids[0] else "")
            )
    for (root, number), attempt in sorted(attempts.items()):
        if attempt["state"]["S"] == "sent" and (root, number) not in sends:
            check.violations.append(f"{root} attempt {number} recorded sent, no message went out")
    check.evidence = f"{len(created)} messages created, {len(attempts)} attempts recorded"
    return check


def failures_decided(
    items: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    links: dict[str, tuple[str, int]],
    dead: list[str],
    *,
    truth: dict[Receipt, dict[str, Any]] | None = None,
    reached: set[str] | None = None,
    lost: set[tuple[str, str, str]] | None = None,
) -> Check:
    """Every failure Twilio holds (`truth`), its webhook lost or not, is stored, and every stored
    failure is decided (retried or given up) in its own chain, or its job is in the DLQ, where
    the DLQ alarm makes it visible. A failure of a receipt no webhook of which reached ingest
    (none in `reached`) is invisible to Redeliver, as in production: counted, not a violation."""
    check = Check("every failure decided or visible in the DLQ")
    in_dlq = {describe_job(body).split(" ", 1)[0] for body in dead}
    invisible = unlearned = 0
    for (message, sid), receipt in sorted((truth or {}).items()):
        if receipt["status"] not in FAILURE_STATUSES:
            continue
        item = by_key.get((f"MSG#{message}", f"RCPT#{sid}"))
        stored = item["status"]["S"] if item else None
        if stored == receipt["status"]:
            continue
        if item is None and sid not in (reached or set()):
            invisible += 1
            continue
        unlearned += 1
        how = "its webhook lost" if (message, sid, receipt["status"]) in (lost or set()) else ""
        check.violations.append(
            f"failure of {message} (Twilio: {receipt['status']} {receipt['error_code']}"
            f"{', ' + how if how else ''}) is stored as {stored or 'nothing'}: never learned"
        )
    failures = _failures(items)
    for item in failures:
        root, number, state = _failure_decision(item, by_key, links)
        message = item["pk"]["S"].removeprefix("MSG#")
        if state in ("sent", "gave_up") or message in in_dlq:
            continue
        elsewhere = by_key.get((item["pk"]["S"], "ATTEMPT#001")) if root != message else None
        check.violations.append(
            f"failure of {message} left without a decision: {root} attempt {number} is "
            f"{state or 'not recorded'}"
            + (
                f" (an attempt was recorded under {message} itself, as a root: "
                f"{elsewhere['state']['S']})"
                if elsewhere
                else ""
            )
        )
    check.evidence = f"{len(failures)} failures stored, {len(dead)} job(s) in the DLQ"
    if truth is not None:
        held = sum(1 for r in truth.values() if r["status"] in FAILURE_STATUSES)
        check.evidence += (
            f"; {held} failures at Twilio, {unlearned} never learned, {invisible} invisible "
            "(no webhook of theirs arrived)"
        )
    return check


def no_server_errors(offline: Offline, killed: int = 0) -> Check:
    """Ingest never answers 5xx for valid input: the only 5xx allowed are the `killed` ingest
    invocations (make chaos kills containers: API Gateway then answers 500)."""
    check = Check("no 5xx for valid input" + (" but the injected kills" if killed else ""))
    server_errors = {s: n for s, n in offline.api.answers.items() if s >= 500}
    if sum(server_errors.values()) > killed:
        check.violations.append(
            f"ingest answered 5xx {sum(server_errors.values())} times {server_errors}"
            + (f", {killed} of them injected kills" if killed else "")
        )
    if offline.emitter and offline.emitter.stats.errors:
        check.violations.append(f"{offline.emitter.stats.errors} webhook(s) got no answer")
    answered = sum(offline.api.answers.values())
    check.evidence = f"{answered} answers" + (f", {killed} kills" if killed else "")
    return check


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
    depth = _queue_depth(boto3.client("sqs"), offline.stack.outputs["RetryQueueUrl"])
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
    for item in _failures(items):
        if _failure_decision(item, by_key, links)[2] in ("sent", "gave_up", "claimed"):
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
    parser.add_argument(
        "--lose-webhooks",
        type=float,
        default=0.03,
        metavar="RATE",
        help="share of webhooks lost on the way, never sent: the reconciler must recover the "
        "failures among them from Twilio's Receipts API (0.03)",
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
        "--rate", type=float, default=20.0, help="with --target: most webhooks per second (20)"
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
        return load_test(
            args.target, token, args.messages, rate=args.rate or 20.0, mix=mix, seed=args.seed
        )

    # `kill` as well as Ctrl-C stops everything this started (moto is a separate process), after
    # the report.
    signal.signal(signal.SIGTERM, _terminated)
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


def _terminated(*_: object) -> None:
    raise Interrupted("SIGTERM")


if __name__ == "__main__":
    sys.exit(main())
