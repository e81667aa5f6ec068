"""Ingest: cold start, AWS calls per receipt, handler CPU per receipt, cost per million receipts.

Every figure is a ratio to a baseline measured in the same run:
- cold start: importing the handler with its clients ready, against bare Python + boto3 creating
  the same two clients with the same config (a Lambda doing nothing else would pay that much);
- CPU: one receipt through the real handler, against one bare boto3 UpdateItem on the same table,
  from a client built with the same Config;
- cost: Redeliver's ingest, against the least any webhook-to-DynamoDB receiver pays (one HTTP API
  request, one Lambda request, one write);
- reconciliation: the index writes a message's receipts cause (measured: how often the real write
  moves the receipt in or out of StuckSentByShard, and the entry's size), in dollars per million
  messages, against today's cost of those receipts;
- TrackMessages: one onMessageAdded through the real handler (its AWS calls, log bytes, the
  tracked item's index entry measured), then the reconciler's Query and index removal for it, in
  dollars per million messages, against a sent receipt's cost. With it off, the receipts' rows
  above are the same code path, and Twilio sends no onMessageAdded (configure-webhook).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    COLD_REPEATS,
    FAKE_AWS,
    cold_start,
    table,
)
from tools.moto_server import moto_server

BASELINE_IMPORT = """
import time; t = time.perf_counter()
import boto3
from botocore.config import Config
config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 3})
boto3.client("dynamodb", config=config); boto3.client("sqs", config=config)
print(time.perf_counter() - t)
"""
HANDLER_IMPORT = """
import time; t = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/ingest/app.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
print(time.perf_counter() - t)
"""

# Public on-demand prices, us-east-1, as published in 2026 (USD).
PRICE = {
    "http_api_request": 1.00 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "dynamodb_write_unit": 0.625 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "logs_gb": 0.50,
}
ASSUMED_AWS_ROUND_TRIP_S = 0.008  # per DynamoDB/SQS call from Lambda: not measurable offline
MEMORY_GB = 0.5  # IngestFunction's MemorySize
FAILURE_SHARE = 0.05  # cost mix: 5 % of receipts are new failures
# Lambda's own lines per invocation in JSON log format (LoggingConfig), at SystemLogLevel INFO;
# at WARN (the template's default) there are none. Shaped as Lambda's platform.start,
# platform.runtimeDone and platform.report records (ids, times and figures of realistic length,
# X-Ray tracing on as in the template): START, END and REPORT of the text format.
_REQUEST = "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"
_TRACE = {
    "type": "X-Amzn-Trace-Id",
    "value": "Root=1-6746f0a1-2b3c4d5e6f708192a3b4c5d6;Parent=53995c3f42cd8ad8;Sampled=1",
}
PLATFORM_LINES = [
    {
        "time": "2026-11-27T10:00:00.000Z",
        "type": "platform.start",
        "record": {"requestId": _REQUEST, "version": "$LATEST", "tracing": _TRACE},
    },
    {
        "time": "2026-11-27T10:00:00.021Z",
        "type": "platform.runtimeDone",
        "record": {
            "requestId": _REQUEST,
            "status": "success",
            "tracing": _TRACE,
            "spans": [
                {
                    "name": "responseLatency",
                    "start": "2026-11-27T10:00:00.001Z",
                    "durationMs": 19.812,
                },
                {
                    "name": "responseDuration",
                    "start": "2026-11-27T10:00:00.021Z",
                    "durationMs": 0.089,
                },
            ],
            "metrics": {"durationMs": 20.512, "producedBytes": 63},
        },
    },
    {
        "time": "2026-11-27T10:00:00.022Z",
        "type": "platform.report",
        "record": {
            "requestId": _REQUEST,
            "status": "success",
            "tracing": _TRACE,
            "metrics": {
                "durationMs": 20.93,
                "billedDurationMs": 21,
                "memorySizeMB": 512,
                "maxMemoryUsedMB": 96,
            },
        },
    },
]
PLATFORM_BYTES = {
    "INFO": sum(len(json.dumps(line, separators=(",", ":"))) + 1 for line in PLATFORM_LINES),
    "WARN": 0,
}
SYSTEM_LOG_LEVEL = "WARN"  # template.yaml's SystemLogLevel default
# the most each figure may be (printed beside it)
TARGET = {"log_bytes": 400, "cost": 1.12, "cpu": 1.5, "cold_start": 1.30}
# Reconciliation's cost model: what a message's life is, and how many get stuck.
LIFECYCLE = ("sent", "delivered", "read")  # the receipts of one delivered WhatsApp message
STUCK_SHARE = 0.02  # messages still at `sent` after ReconcileAfterMinutes (no report yet)
INDEX_ENTRY_OVERHEAD = 100  # bytes DynamoDB adds to each index entry
PRICE_READ_UNIT = 0.125 / 1e6  # on-demand read request unit


@dataclass
class Scenario:
    name: str
    fields: list[dict[str, str]]  # what is posted before measuring (state to build on)
    measured: dict[str, str]  # the receipt whose calls are counted


def scenarios() -> list[Scenario]:
    from tools.samples import receipt_fields

    return [
        Scenario("sent (new receipt)", [], receipt_fields("sent", message="a")),
        Scenario(
            "delivered (newer)",
            [receipt_fields("sent", message="b")],
            receipt_fields("delivered", message="b", updated="2026-11-27T10:00:05Z"),
        ),
        Scenario("new failure", [], receipt_fields("failed", message="c", error_code=30005)),
        Scenario(
            "duplicate", [receipt_fields("sent", message="d")], receipt_fields("sent", message="d")
        ),
        Scenario(
            "out of order (older)",
            [receipt_fields("read", message="e", updated="2026-11-27T10:00:09Z")],
            receipt_fields("sent", message="e"),
        ),
    ]


def hot_path(receipts: int = 300) -> dict[str, Any]:
    """Calls per receipt and CPU per receipt, against moto in another process."""
    from tools.apigw import http_api_event
    from tools.lambdas import FakeContext, import_function
    from tools.samples import receipt_fields
    from tools.stack import TEST_AUTH_TOKEN, deploy

    with moto_server() as endpoint:
        os.environ.update({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
        stack = deploy("bench")
        os.environ.update(stack.environment("IngestFunction"))
        app = import_function("ingest")
        calls: list[str] = []
        for client in (app.ingest.recorder._receipts._db, app.ingest._queue._sqs):
            client.meta.events.register(
                "before-call.*.*", lambda model, **_: calls.append(model.name)
            )
        logs = io.StringIO()  # log lines and EMF metrics: what CloudWatch Logs would ingest
        app.logger.registered_handler.setStream(logs)

        def post(fields: dict[str, str]) -> None:
            response = app.lambda_handler(
                http_api_event(fields, token=TEST_AUTH_TOKEN), FakeContext()
            )
            assert response["statusCode"] == 200, response

        stdout = contextlib.redirect_stdout(logs)  # Powertools prints EMF metrics to stdout
        stdout.__enter__()
        post(receipt_fields("sent", message="warm-up"))  # reads the secret once
        counts = {}
        for scenario in scenarios():
            for fields in scenario.fields:
                post(fields)
            calls.clear()
            post(scenario.measured)
            counts[scenario.name] = list(calls)

        reconcile = index_writes(post, app, stack.outputs["ReceiptsTableName"])
        tracked = tracked_message(post, app, stack.outputs["ReceiptsTableName"], logs, calls)

        # Log bytes of a new failure (its own run: its line is longer, and the SQS send).
        logs.seek(0)
        logs.truncate()
        for n in range(20):
            post(receipt_fields("failed", message=f"log-{n}", error_code=30005))
        failure_log_bytes = len(logs.getvalue().encode()) / 20

        # CPU per receipt: a fresh sent receipt each time (the common case), against the
        # baseline. Only the handler is timed: signing and shaping the request is Twilio's and
        # API Gateway's work, and the context object is Lambda's (~0.05 ms a receipt here).
        requests = [
            (
                http_api_event(receipt_fields("sent", message=f"cpu-{n}"), token=TEST_AUTH_TOKEN),
                FakeContext(),
            )
            for n in range(receipts)
        ]
        bare = baseline_client()
        table_name = stack.outputs["ReceiptsTableName"]

        def bare_write(n: int) -> None:
            bare.update_item(
                TableName=table_name,
                Key={"pk": {"S": f"bare-{n}"}, "sk": {"S": "x"}},
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "sent"}},
            )

        bare_write(-1)  # its first call resolves what the handler's warm-up resolved for it
        logs.seek(0)
        logs.truncate()
        handler_cpu, bare_cpu = cpu_per_receipt(app.lambda_handler, requests, bare_write)
        log_bytes = len(logs.getvalue().encode()) / receipts
        stdout.__exit__(None, None, None)
        del os.environ["AWS_ENDPOINT_URL"]
    return {
        "counts": counts,
        "handler_cpu": handler_cpu,
        "bare_cpu": bare_cpu,
        "log_bytes": log_bytes,
        "failure_log_bytes": failure_log_bytes,
        "reconcile": reconcile,
        "tracked": tracked,
    }


def tracked_message(
    post: Any, app: Any, table: str, logs: io.StringIO, calls: list[str]
) -> dict[str, Any]:
    """TrackMessages: an onMessageAdded through the real handler, TrackedMessages switched on
    for it (the bench stack deploys with it off: the receipts above are measured as they run
    by default). Its calls, its log bytes, and its index entry's size."""
    from redeliver.adapters.dynamodb.reconciliation import STUCK_PROJECTION
    from redeliver.adapters.dynamodb.table import STUCK_SHARD, STUCK_SINCE, tracked_key
    from redeliver.adapters.dynamodb.tracked import TrackedMessages
    from tools.samples import message_added_fields, sid

    client = app.ingest.recorder._receipts._db  # the calls above are counted on it
    app.ingest._tracked = TrackedMessages(client, table)
    try:
        calls.clear()
        post(message_added_fields(message="tracked-0"))
        made = list(calls)
        logs.seek(0)
        logs.truncate()
        for n in range(1, 21):
            post(message_added_fields(message=f"tracked-{n}"))
        log_bytes = len(logs.getvalue().encode()) / 20
    finally:
        app.ingest._tracked = None
    item = client.get_item(TableName=table, Key=tracked_key(sid("IM", "tracked-0")))["Item"]
    kept = {"pk", "sk", STUCK_SHARD, STUCK_SINCE, *STUCK_PROJECTION}
    entry = sum(_size(k, v) for k, v in item.items() if k in kept) + INDEX_ENTRY_OVERHEAD
    return {"calls": made, "log_bytes": log_bytes, "entry_bytes": entry}


def cpu_per_receipt(
    handler: Callable[[Any, Any], dict[str, Any]],
    requests: list[tuple[Any, Any]],
    baseline: Callable[[int], None],
    block: int = 10,
) -> tuple[float, float]:
    """CPU seconds per call of the handler and of the baseline, timed in alternating blocks.

    On a shared machine, 300 calls of one then 300 of the other are timed under different loads,
    and their ratio moves with the load, not with the code. Alternating call by call is not fair
    either: each bare call would then run in caches the handler has just filled with its own
    code (~0.3 ms more a call here). In blocks, each kind mostly runs after itself, as in one
    block, and both share the machine's load of the moment.

    The figure is the median over blocks of CPU per call, not the total: another process on the
    machine (moto, a build) shows as a few blocks many times slower, and such blocks moved the
    total's ratio by 0.2 from run to run. Garbage collection, the one real cost that also comes
    in bursts, is frozen out at init by the handler itself (functions/ingest/app.py)."""
    handler_blocks: list[float] = []
    baseline_blocks: list[float] = []
    for first in range(0, len(requests), block):
        chunk = requests[first : first + block]
        started = time.process_time()
        for event, context in chunk:
            response = handler(event, context)
            assert response["statusCode"] == 200, response
        handler_blocks.append((time.process_time() - started) / len(chunk))
        started = time.process_time()
        for n in range(first, first + len(chunk)):
            baseline(n)
        baseline_blocks.append((time.process_time() - started) / len(chunk))
    return statistics.median(handler_blocks), statistics.median(baseline_blocks)


def baseline_client() -> Any:
    """The CPU baseline's DynamoDB client, built as the handler's own is (redeliver.adapters.aws).

    Not from the handler client's `meta.config`: that carries the resolved User-Agent as if the
    caller had supplied one, and botocore then skips rebuilding the header on every request
    (~0.09 ms a call here), which no client built from a Config skips, the handler's included."""
    from redeliver.adapters.aws import WEBHOOK, dynamodb_client

    return dynamodb_client(WEBHOOK)


def index_writes(post: Any, app: Any, table: str) -> dict[str, Any]:
    """One message's receipts through the real handler: after each, is the receipt in the
    reconciliation index, and how big is its entry? Each move in or out is one index write."""
    from redeliver.adapters.dynamodb.reconciliation import STUCK_PROJECTION
    from redeliver.adapters.dynamodb.table import (
        STUCK_SHARD,
        STUCK_SINCE,
        message_pk,
    )
    from tools.samples import receipt_fields, sid

    client = app.ingest.recorder._receipts._db
    writes, largest, inside = 0, 0, False
    for second, status in enumerate(LIFECYCLE):
        post(receipt_fields(status, message="life", updated=f"2026-11-27T10:00:0{second}Z"))
        [item] = client.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": message_pk(sid("IM", "life"))}},
        )["Items"]
        now_inside = STUCK_SINCE in item
        writes += now_inside != inside
        inside = now_inside
        if inside:
            kept = {"pk", "sk", STUCK_SHARD, STUCK_SINCE, *STUCK_PROJECTION}
            size = sum(_size(k, v) for k, v in item.items() if k in kept) + INDEX_ENTRY_OVERHEAD
            largest = max(largest, size)
    return {"writes": writes, "entry_bytes": largest, "units": writes * -(-largest // 1024)}


def _size(name: str, value: Any) -> int:
    """DynamoDB's item-size rules for the S and N attributes an index entry holds."""
    [(kind, content)] = value.items()
    if kind == "N":
        digits = content.lstrip("-").replace(".", "").strip("0") or "0"
        return len(name) + (len(digits) + 1) // 2 + 1
    return len(name) + len(str(content).encode())


def cost_per_million(
    cpu_s: float, calls: int, writes: float, sends: int, log_bytes: float
) -> float:
    duration = cpu_s + calls * ASSUMED_AWS_ROUND_TRIP_S
    per_receipt = (
        PRICE["http_api_request"]
        + PRICE["lambda_request"]
        + duration * MEMORY_GB * PRICE["lambda_gb_second_arm64"]
        + writes * PRICE["dynamodb_write_unit"]
        + sends * PRICE["sqs_request"]
        + log_bytes / 1e9 * PRICE["logs_gb"]
    )
    return per_receipt * 1e6


def run() -> str:
    baseline, handler = cold_start(BASELINE_IMPORT, HANDLER_IMPORT)
    hot = hot_path()
    counts = hot["counts"]
    rows = [[name, str(len(c)), ", ".join(c) or "-"] for name, c in counts.items()]
    non_failure = max(len(counts["sent (new receipt)"]), len(counts["delivered (newer)"]))
    cpu_ratio = hot["handler_cpu"] / hot["bare_cpu"]
    platform = PLATFORM_BYTES[SYSTEM_LOG_LEVEL]
    ok_logs = hot["log_bytes"] + platform
    fail_logs = hot["failure_log_bytes"] + platform
    # A new failure writes the receipt and its RetryPendingByShard entry (563 B): 2 write units.
    ok_cost = cost_per_million(hot["handler_cpu"], 1, 1, 0, ok_logs)
    fail_cost = cost_per_million(hot["handler_cpu"], 2, 2, 1, fail_logs)
    mixed = (1 - FAILURE_SHARE) * ok_cost + FAILURE_SHARE * fail_cost
    floor = cost_per_million(hot["bare_cpu"], 1, 1, 0, 0)
    out = [
        table(
            f"Ingest cold start (import + clients ready, median of {COLD_REPEATS} fresh "
            "interpreters, Lambda-like venv: boto3 + layer requirements only)",
            ["what", "seconds", "ratio"],
            [
                ["baseline: python + boto3 + dynamodb/sqs clients", f"{baseline:.3f}", "1.00"],
                [
                    "ingest handler (functions/ingest/app.py)",
                    f"{handler:.3f}",
                    f"{handler / baseline:.2f}  (target <= {TARGET['cold_start']:.2f})",
                ],
            ],
        ),
        table(
            "AWS calls per receipt (counted on the handler's own clients)",
            ["receipt", "calls", "which"],
            rows,
        ),
        table(
            "Handler CPU per receipt (moto in another process)",
            ["what", "ms", "ratio"],
            [
                ["baseline: one bare boto3 UpdateItem", f"{hot['bare_cpu'] * 1e3:.2f}", "1.00"],
                [
                    "ingest handler, one sent receipt",
                    f"{hot['handler_cpu'] * 1e3:.2f}",
                    f"{cpu_ratio:.2f}  (target <= {TARGET['cpu']:.1f})",
                ],
            ],
        ),
        log_table(hot),
        table(
            f"Cost per million receipts (USD, us-east-1 on-demand; assumes "
            f"{ASSUMED_AWS_ROUND_TRIP_S * 1e3:.0f} ms per AWS call in Lambda; log bytes measured, "
            f"SystemLogLevel {SYSTEM_LOG_LEVEL}: {ok_logs:.0f} B a receipt, {fail_logs:.0f} B a "
            "failure)",
            ["what", "USD / 1M", "ratio"],
            [
                ["floor: HTTP API + Lambda request + 1 write", f"{floor:.2f}", "1.00"],
                ["sent/delivered/read receipts", f"{ok_cost:.2f}", f"{ok_cost / floor:.2f}"],
                ["new failures", f"{fail_cost:.2f}", f"{fail_cost / floor:.2f}"],
                [
                    f"mix with {FAILURE_SHARE:.0%} failures",
                    f"{mixed:.2f}",
                    f"{mixed / floor:.2f}  (target <= {TARGET['cost']:.2f})",
                ],
            ],
        ),
        reconcile_table(hot["reconcile"], ok_cost, fail_cost),
        tracked_table(hot, ok_cost, platform),
        f"\nnon-failure receipts: {non_failure} AWS call(s) each (target 1)",
    ]
    return "\n".join(out)


def tracked_table(hot: dict[str, Any], ok_cost: float, platform: int) -> str:
    """TrackMessages per million messages: ingest's onMessageAdded (one more webhook and one
    write), then the reconciler's Query of the message's partition and its index removal."""
    tracked = hot["tracked"]
    units = -(-tracked["entry_bytes"] // 1024)  # the index entry's write units (put, delete)
    # The webhook: its calls counted; CPU taken as a receipt's (the same signature check and one
    # smaller UpdateItem); its item's write plus its index entry's.
    webhook = cost_per_million(
        hot["handler_cpu"], len(tracked["calls"]), 1 + units, 0, tracked["log_bytes"] + platform
    )
    # The reconciler, once per tracked message: a strongly consistent Query of one small item
    # (1 read unit) and an UpdateItem removing it from the index (the item and its entry).
    reconcile = (PRICE_READ_UNIT + (1 + units) * PRICE["dynamodb_write_unit"]) * 1e6
    added = webhook + reconcile
    return table(
        f"TrackMessages per million messages (onMessageAdded measured: "
        f"{len(tracked['calls'])} AWS call(s) {', '.join(tracked['calls'])}, "
        f"{tracked['log_bytes']:.0f} B of logs, index entry {tracked['entry_bytes']} B)",
        ["what", "AWS calls / message", "USD / 1M messages", "ratio to a sent receipt"],
        [
            ["a sent receipt's ingest (as above)", "1", f"{ok_cost:.2f}", "1.00"],
            [
                "onMessageAdded: webhook + 1 write",
                str(len(tracked["calls"])),
                f"{webhook:.2f}",
                f"{webhook / ok_cost:.2f}",
            ],
            [
                "reconciler: Query + index removal",
                "2",
                f"{reconcile:.2f}",
                f"{reconcile / ok_cost:.2f}",
            ],
            ["tracked in all", "", f"{added:.2f}", f"{added / ok_cost:.2f}"],
            ["TrackMessages=false", "0", "0.00", "0.00"],
        ],
    )


def log_table(hot: dict[str, Any]) -> str:
    """What CloudWatch Logs ingests per receipt, the application's own output measured, Lambda's
    platform lines (START/END/REPORT) added as each SystemLogLevel would."""
    rows = []
    for level in ("WARN", "INFO"):
        platform = PLATFORM_BYTES[level]
        rows.append(
            [
                f"SystemLogLevel {level}" + ("  (template default)" if level == "WARN" else ""),
                f"{platform}",
                f"{hot['log_bytes'] + platform:.0f}",
                f"{hot['failure_log_bytes'] + platform:.0f}",
            ]
        )
    return table(
        f"Log bytes per receipt (application output measured: {hot['log_bytes']:.0f} B a sent "
        f"receipt, target <= {TARGET['log_bytes']}; {hot['failure_log_bytes']:.0f} B a new "
        "failure)",
        ["system lines", "platform B", "sent receipt B", "new failure B"],
        rows,
    )


def reconcile_table(measured: dict[str, Any], ok_cost: float, fail_cost: float) -> str:
    """What the reconciliation index adds per million messages, against today."""
    receipts = len(LIFECYCLE)
    today = (receipts - FAILURE_SHARE) * ok_cost + FAILURE_SHARE * fail_cost  # per 1M messages
    index = measured["units"] * PRICE["dynamodb_write_unit"] * 1e6
    # A stuck message: a Query read of its entry, one UpdateItem (table + index entry) per lookup,
    # at most ReconcileMaxLookups (3) lookups; Twilio's API calls cost nothing.
    lookups = STUCK_SHARE * 3 * (2 * PRICE["dynamodb_write_unit"] + 0.5 * PRICE_READ_UNIT) * 1e6
    added = index + lookups
    return table(
        f"Reconciliation per million messages ({'/'.join(LIFECYCLE)} receipts each, "
        f"{STUCK_SHARE:.0%} stuck at sent and looked up 3 times; index entry "
        f"{measured['entry_bytes']} B, measured)",
        ["what", "index writes / message", "USD / 1M messages", "ratio to today"],
        [
            ["today: the receipts' ingest (mix as above)", "0", f"{today:.2f}", "1.000"],
            [
                "index: put on sent, removed on delivered",
                f"{measured['writes']} ({measured['units']} WCU)",
                f"{index:.2f}",
                f"{index / today:.3f}",
            ],
            ["lookups of stuck receipts", "-", f"{lookups:.3f}", f"{lookups / today:.4f}"],
            ["reconciliation in all", "", f"{added:.2f}", f"+{added / today:.1%}"],
            ["ReconcileAfterMinutes=0", "0", "0.00", "+0.0%"],
        ],
    )
