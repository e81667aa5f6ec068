"""The real Lambda handlers, loaded for one test with a deployed function's environment."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import pytest

from tools.lambdas import FakeContext, emitted_metrics, import_function


def load_function(
    directory: str, environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """functions/<directory>/app.py in a new 'container' with `environment` (undone after)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return import_function(directory)


def invoke(module: ModuleType, event: Mapping[str, Any]) -> Any:
    return module.lambda_handler(dict(event), FakeContext())


def metric_names(text: str) -> list[str]:
    return [name for name, _, _ in emitted_metrics(text)]


def metric_series(text: str) -> list[tuple[str, dict[str, str]]]:
    """(name, dimensions beside `service`) of every series printed: `("Receipts", {})` is the
    webhooks-only count, `("Receipts", {"change": "new"})` one of its breakdowns."""
    return [
        (name, {k: v for k, v in dims.items() if k != "service"})
        for name, dims, _ in emitted_metrics(text)
    ]
