"""The template's event sources on this machine, each invoking the runtime: its HttpApi routes on
loopback (`LocalApi`), Lambda's SQS pollers (`Pollers`, with the `JobBook` of every job they
received and what became of it) and EventBridge Scheduler's schedules (`Scheduler`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import boto3

from tools.apigw import request_event
from tools.offline.runtime import FunctionError, Runtime, describe_job
from tools.sqs_poller import Batch, poll_forever
from tools.stack import DeployedStack, load_template


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
