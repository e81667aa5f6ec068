"""Run the real Lambda handlers in-process: tests, benchmarks and the offline stack all use this."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

from aws_lambda_powertools.utilities import parameters

from tools.stack import ROOT

_counter = itertools.count()


@dataclass
class FakeContext:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name: str = "redeliver-local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:redeliver-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 4000
    deadline: float | None = None  # time.monotonic() when Lambda would stop the invocation

    def get_remaining_time_in_millis(self) -> int:
        """`remaining_ms`, or with a deadline what is left of it, as Lambda's clock runs down."""
        if self.deadline is None:
            return self.remaining_ms
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    @classmethod
    def for_timeout(cls, seconds: float, function_name: str = "redeliver-local") -> FakeContext:
        """The context of an invocation starting now, of a function with this Timeout."""
        return cls(function_name=function_name, deadline=time.monotonic() + seconds)


def import_function(directory: str) -> ModuleType:
    """Import functions/<directory>/app.py afresh, as a new Lambda container would, with the
    environment as it is now (set the function's environment first)."""
    # A new container has no cached secret, nor Powertools' cached provider, whose boto3 client
    # was made for whatever endpoint (mock_aws, an earlier moto server) the last import had.
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped
    parameters.base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]  # not in its __all__
    path = ROOT / "functions" / directory / "app.py"
    name = f"lambda_{directory}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def emitted_metrics(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, dimensions, value) of every EMF metric printed in `text`: one per metric, per
    dimension set, per value, for every directive of every document (redeliver.observability
    packs several directives into one document). A document CloudWatch would not read whole
    raises: a declared metric or dimension without its value, or more than EMF's limits (100
    metrics a document, 100 values a metric, 30 dimensions a set)."""
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        directives = blob["_aws"]["CloudWatchMetrics"]
        if not isinstance(blob["_aws"].get("Timestamp"), int):
            raise ValueError(f"EMF document without a millisecond Timestamp: {line}")
        if sum(len(d["Metrics"]) for d in directives) > 100:
            raise ValueError(f"EMF document over 100 metrics: {line}")
        for directive in directives:
            if not directive.get("Namespace"):
                raise ValueError(f"EMF directive without a namespace: {line}")
            for group in directive["Dimensions"]:
                missing = [d for d in group if not isinstance(blob.get(d), str)]
                if missing or len(group) > 30:
                    raise ValueError(f"EMF dimension(s) {missing or group} unusable: {line}")
                dimensions = {d: blob[d] for d in group}
                for metric in directive["Metrics"]:
                    value = blob.get(metric["Name"])
                    values = value if isinstance(value, list) else [value]
                    if not values or not all(isinstance(v, int | float) for v in values):
                        raise ValueError(f"EMF metric {metric['Name']} has no value: {line}")
                    if len(values) > 100:
                        raise ValueError(f"EMF metric {metric['Name']} over 100 values: {line}")
                    for one in values:
                        yield metric["Name"], dimensions, one
