"""The benchmarks' baselines: a ratio is only as honest as what it divides by."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bench.ingest import baseline_client
from redeliver.adapters.aws import WEBHOOK, dynamodb_client


class _Sent(Exception):
    """Raised where the request would leave: nothing reaches the network."""


def _user_agent(client: Any) -> bytes:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["User-Agent"])
        raise _Sent

    client.meta.events.register("before-send.dynamodb.UpdateItem", capture)
    try:
        with pytest.raises(_Sent):
            client.update_item(
                TableName="t",
                Key={"pk": {"S": "p"}, "sk": {"S": "s"}},
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "sent"}},
            )
    finally:
        client.meta.events.unregister("before-send.dynamodb.UpdateItem", capture)
    [header] = seen
    return header


def test_the_cpu_baseline_client_does_per_request_what_the_handlers_does() -> None:
    # A client built from another's meta.config takes botocore's supplied-User-Agent path: it
    # skips the header's rebuild on each request (and sends another header), so the baseline
    # would be cheaper than any client the handler could have.
    handler = dynamodb_client(WEBHOOK)
    # The same header, but for the feature ids (`m/…`), which botocore collects as a process
    # goes (the first client to resolve credentials gets one more than the next).
    assert _without_features(_user_agent(baseline_client())) == _without_features(
        _user_agent(handler)
    )


def _without_features(header: bytes) -> bytes:
    return re.sub(rb" m/\S+", b"", header)


def test_the_handler_and_its_baseline_are_timed_in_alternating_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each call costs a fixed time on a fake clock, whatever the machine does: the handler's
    # calls must alternate with the baseline's in blocks, not all come before them.
    import bench.ingest as bench_ingest

    clock = {"now": 0.0}
    order: list[str] = []

    def handler(event: Any, context: Any) -> dict[str, Any]:
        order.append("handler")
        clock["now"] += 3.0
        return {"statusCode": 200}

    def baseline(n: int) -> None:
        order.append(f"baseline {n}")
        clock["now"] += 2.0

    monkeypatch.setattr(
        bench_ingest, "time", type("Clock", (), {"process_time": lambda: clock["now"]})
    )
    cpu = bench_ingest.cpu_per_receipt(handler, [({}, None)] * 5, baseline, block=2)
    assert order == [
        *["handler", "handler", "baseline 0", "baseline 1"],
        *["handler", "handler", "baseline 2", "baseline 3"],
        *["handler", "baseline 4"],
    ]
    assert cpu == (3.0, 2.0)
