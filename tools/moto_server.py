"""moto in server mode, in its own process on loopback (the offline stack and the benchmarks).

It serves one request at a time. moto's server is threaded, but its backends are not safe under
concurrent requests: two conditional writes to one new item can both pass (the second replaces
the first), and concurrent transactions have answered 500. DynamoDB makes each conditional write
and transaction atomic; serialising moto gives the offline stack that guarantee back. Callers
short-poll SQS (a long poll would hold the lock).

Serialised, moto must stay quick, or the handlers' bounded boto clients (redeliver.adapters.aws: 2 s
read timeout, 3 attempts) time out waiting behind it and ingest answers 500 — which is the
emulator's defect, not the product's (DynamoDB answers in milliseconds). Two things made it slow
under load (`make offline` at 1 000 messages):

- moto's TransactWriteItems deep-copies every table it touches, once per item, to roll back on
  failure: ~0.2 s per transaction at 4 000 items, growing with the table, every retry claim and
  record. Here only the items a transaction touches are saved and restored (one request at a time,
  so nobody sees the half-done state in between), which is what the rollback needs.
- a plain lock is not fair: a request could lose the race to newer ones again and again. Requests
  are served in arrival order.

And one way moto differs from DynamoDB turned a slow answer into a wrong one: botocore gives each
TransactWriteItems a ClientRequestToken and keeps it across its retries, and DynamoDB applies a
token's transaction once (for ten minutes, a repeat that succeeded before succeeds again without
writing). moto ignores the token: a claim whose answer timed out but was applied came back, on the
client's retry, as "another worker holds the claim" — the worker's own claim — and its job waited
out the queue's visibility timeout. Here a repeated token is answered as DynamoDB answers it.

`--slow-log PATH` appends one line per request that took over a second, waiting included, so a
report can say when moto, not the product, was the bottleneck.

    python -m tools.moto_server -p PORT [--slow-log PATH]     serve (what `moto_server()` starts)
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# What boto3 needs to talk to moto: credentials and a region, none of them real.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto",
    "AWS_SECRET_ACCESS_KEY": "moto",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SLOW_SECONDS = 1.0
TOKEN_SECONDS = 600  # how long DynamoDB remembers a transaction's ClientRequestToken


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def moto_server(slow_log: Path | None = None) -> Iterator[str]:
    """A moto server on 127.0.0.1 in a separate process; yields its endpoint URL."""
    port = free_port()
    command = [sys.executable, "-m", "tools.moto_server", "-p", str(port)]
    if slow_log is not None:
        command += ["--slow-log", str(slow_log)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


class FairLock:
    """A lock handed out in arrival order (threading.Lock lets a newcomer overtake a waiter)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._condition:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._condition.wait()

    def __exit__(self, *_: object) -> None:
        with self._condition:
            self._serving += 1
            self._condition.notify_all()


class Serialised:
    """WSGI middleware: one request inside the wrapped application at a time, first come first
    served; requests slower than SLOW_SECONDS (waiting included) are written to `slow_log`."""

    def __init__(self, app: Callable[..., Iterable[bytes]], slow_log: Path | None = None) -> None:
        self._app = app
        self._lock = FairLock()
        self._slow_log = slow_log

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        arrived = time.monotonic()
        with self._lock:
            started = time.monotonic()
            body = list(self._app(environ, start_response))  # the body, read under the lock
        done = time.monotonic()
        if self._slow_log is not None and done - arrived > SLOW_SECONDS:
            line = {
                "at": time.time(),
                "operation": operation(environ),
                "waited": round(started - arrived, 3),
                "served": round(done - started, 3),
            }
            with self._slow_log.open("a", encoding="utf-8") as log:
                log.write(json.dumps(line) + "\n")
        return body


def operation(environ: dict[str, Any]) -> str:
    """`DynamoDB_20120810.UpdateItem`, `AmazonSQS.ReceiveMessage`: the JSON protocols' target."""
    return str(environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO") or "?")


def faithful_transactions() -> None:
    """TransactWriteItems without moto's whole-table deep copies, and with DynamoDB's idempotency
    tokens (see the module docstring).

    The rollback restores the items the transaction touched, saved before it ran; moto's own
    copy of each table is made an identity, so its rollback (re-assigning the table) is a no-op.
    """
    from moto.dynamodb import models  # noqa: PLC0415 - only the server needs moto
    from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415
    from moto.dynamodb.models.table import Table  # noqa: PLC0415
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

    class _TablesUncopied:
        """What `copy` is inside moto.dynamodb.models: tables are not copied, the rest is."""

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = _TablesUncopied  # type: ignore[assignment,attr-defined]
    original = models.DynamoDBBackend.transact_write_items
    applied: dict[str, float] = {}  # ClientRequestToken → when its transaction succeeded
    current: dict[str, str | None] = {"token": None}  # one request at a time (Serialised)

    def keys(backend: Any, items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        touched = []
        for item in items:
            kind, op = next(iter(item.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            attrs = op["Item"] if kind == "Put" else op.get("Key", {})
            if table.hash_key_attr not in attrs:
                continue
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = (
                DynamoType(attrs[table.range_key_attr])
                if table.range_key_attr and table.range_key_attr in attrs
                else None
            )
            touched.append((table, hash_value, range_value))
        return touched

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        token, now = current["token"], time.monotonic()
        if token is not None and now - applied.get(token, -1e9) < TOKEN_SECONDS:
            return  # already applied: DynamoDB answers success and writes nothing
        saved = [
            (table, h, r, copy.deepcopy(table.get_item(h, r)))
            for table, h, r in keys(self, transact_items)
        ]
        try:
            original(self, transact_items)
        except Exception:
            for table, h, r, before in reversed(saved):
                if r is None:
                    table.items.pop(h, None)
                    if before is not None:
                        table.items[h] = before
                else:
                    table.items[h].pop(r, None)
                    if before is not None:
                        table.items[h][r] = before
            raise
        if token is not None:
            applied[token] = now

    def handle(self: Any) -> Any:
        current["token"] = self.body.get("ClientRequestToken")
        try:
            return respond(self)
        finally:
            current["token"] = None

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    respond = DynamoHandler.transact_write_items
    DynamoHandler.transact_write_items = handle  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - only the server needs moto
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="moto, one request at a time, on loopback")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--slow-log", type=Path, help="append requests slower than 1 s here")
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole process group: moto outlives it until its parent, which still
    # has a report to collect from it, terminates it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faithful_transactions()
    app = Serialised(DomainDispatcherApplication(create_backend_app), args.slow_log)
    run_simple("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
