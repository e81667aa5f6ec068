"""Run the real Lambda handlers in-process, with a deployed function's environment."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count()


@dataclass
class FakeContext:
    function_name: str = "redeliver-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:redeliver-test"
    aws_request_id: str = ""
    remaining_ms: int = 4000

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_function(
    directory: str, environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """Import functions/<directory>/app.py afresh, as a new Lambda container would."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()  # the provider holds a boto3 client: new per test
    path = ROOT / "functions" / directory / "app.py"
    name = f"lambda_{directory}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def invoke(module: ModuleType, event: Mapping[str, Any]) -> Any:
    return module.lambda_handler(dict(event), FakeContext())


def emitted_metrics(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, dimensions, value) of every EMF metric printed in `text` (Powertools' output)."""
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dimensions = {d: blob[d] for group in directive["Dimensions"] for d in group}
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                for one in value if isinstance(value, list) else [value]:
                    yield metric["Name"], dimensions, one


def metric_names(text: str) -> list[str]:
    return [name for name, _, _ in emitted_metrics(text)]
