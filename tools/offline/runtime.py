"""The Lambda runtime: the real handlers, one invocation at a time, each function in its own
container (a process with its own environment and Powertools singletons), replaced when it dies;
and what an invocation was handling, in SIDs (`describe_event`, `describe_job`)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3

from tools.lambdas import FakeContext, import_function
from tools.offline.tuning import Kill, KillPlan, KillPoint
from tools.stack import DeployedStack, load_template


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
