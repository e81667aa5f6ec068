"""The ingest benchmark's CPU figure times the handler alone (bench/ingest.py)."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import pytest

import bench.ingest as bench_ingest
import tools.apigw
from redeliver.observability import logger


def test_the_handler_cpu_counts_the_handler_not_the_request_building(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A clock that only moves when a request is signed (what Twilio does, not the handler): the
    # handler's CPU must not see it move. Deterministic, whatever else runs on the machine.
    clock = {"now": 0.0}
    real_sign = tools.apigw.sign

    def signing(*args: Any, **kwargs: Any) -> str:
        clock["now"] += 1.0
        return real_sign(*args, **kwargs)

    monkeypatch.setattr(tools.apigw, "sign", signing)
    monkeypatch.setattr(
        bench_ingest, "time", type("Clock", (), {"process_time": lambda: clock["now"]})
    )
    stream = logger.registered_handler.stream
    try:
        with mock.patch.dict(os.environ):  # hot_path sets the stack's environment
            hot = bench_ingest.hot_path(receipts=3)
    finally:
        logger.registered_handler.setStream(stream)  # hot_path points it at its buffer
    assert clock["now"] >= 3  # the requests were signed...
    assert hot["handler_cpu"] == 0  # ...but not on the handler's clock
