"""Which AWS API calls the `redeliver` command makes, as IAM actions (`dynamodb:Query`).

Every botocore call passes through `BaseClient._make_api_call`; while a test session runs, a
wrapper there records each call whose Python stack passes through `redeliver_cli/`: the
command's own calls and those of the layer's adapters it drives (the receipts store, the retry
queue, the suppressions), paginated calls included. `tests/docs/test_operator_policy.py` holds
them against `docs/operator-policy.json`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.client import BaseClient

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = str(ROOT / "redeliver_cli") + os.sep
# Set by test_operator_policy when it runs the CLI tests in a process of their own: where to write.
OUTPUT_ENV = "REDELIVER_RECORD_CLI_AWS_CALLS"

RECORDED: set[str] = set()


def _from_the_cli() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(CLI_DIR):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# IAM's service prefix where it is not the endpoint's (CloudWatch's API is `monitoring`).
IAM_PREFIX = {"monitoring": "cloudwatch"}


def iam_action(endpoint_prefix: str, operation_name: str) -> str:
    """The IAM action that allows one API call."""
    return f"{IAM_PREFIX.get(endpoint_prefix, endpoint_prefix)}:{operation_name}"


def install() -> Callable[[], None]:
    """Start recording; returns what stops it."""
    original = BaseClient._make_api_call

    def recording(self: BaseClient, operation_name: str, api_params: Any) -> Any:
        if _from_the_cli():
            RECORDED.add(iam_action(self.meta.service_model.endpoint_prefix, operation_name))
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = recording  # type: ignore[method-assign]

    def uninstall() -> None:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
        if path := os.environ.get(OUTPUT_ENV):
            Path(path).write_text(json.dumps(sorted(RECORDED)))

    return uninstall
