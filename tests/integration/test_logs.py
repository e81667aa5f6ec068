"""What IngestFunction prints per receipt: one compact EMF document per invocation, carrying every
series the alarms and dashboard read and the receipt's operator fields, and not the Lambda context
(which warnings and errors keep)."""

from __future__ import annotations

import json
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.lambdas import invoke
from tools.apigw import http_api_event
from tools.lambdas import emitted_metrics
from tools.samples import receipt_fields
from tools.stack import TEST_AUTH_TOKEN

CONTEXT_KEYS = {
    "function_name",
    "function_arn",
    "function_memory_size",
    "function_request_id",
    "cold_start",
    "correlation_id",
    "xray_trace_id",
    "location",
}


class _CurrentStdout:
    """Whatever sys.stdout is when a line is written (capsys swaps it in for the test call)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def logger_to_captured_stdout(ingest: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Logger's handler holds the stdout of its first import: point it at the test's, so
    that every line the invocation prints is counted."""
    monkeypatch.setattr(ingest.logger.registered_handler, "stream", _CurrentStdout())


def lines_of(
    ingest: ModuleType, fields: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    capsys.readouterr()
    response = invoke(ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
    assert response["statusCode"] == 200
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def directives(document: dict[str, Any]) -> dict[tuple[str, ...], set[str]]:
    """Dimension set -> the metrics counted under it, across the document's directives."""
    found: dict[tuple[str, ...], set[str]] = {}
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for group in directive["Dimensions"]:
            found.setdefault(tuple(group), set()).update(m["Name"] for m in directive["Metrics"])
    return found


def test_an_ordinary_receipt_prints_one_line_with_its_metrics_and_operator_fields(
    ingest: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = receipt_fields("sent", message="plain")
    [line] = lines_of(ingest, fields, capsys)
    # One metric, three dimension sets: webhooks, by change (new: the failure rate's
    # denominator), by status (the funnel); the change and status values are the line's own.
    assert directives(line) == {
        ("service",): {"Receipts"},
        ("service", "change"): {"Receipts"},
        ("service", "status"): {"Receipts"},
    }
    assert line["message_sid"] == fields["MessageSid"]
    assert (line["status"], line["change"]) == ("sent", "new")
    assert not {"receipt_sid", "conversation_sid", "error_code"} & set(line)  # `trace` has them
    assert not CONTEXT_KEYS & set(line), CONTEXT_KEYS & set(line)
    assert "source" not in line  # a webhook: the only source ingest has
    assert len(json.dumps(line, separators=(",", ":"))) <= 400


def test_a_new_failure_prints_one_line_with_its_class_and_error_code(
    ingest: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = receipt_fields("failed", message="broken", error_code=30005)
    [line] = lines_of(ingest, fields, capsys)
    assert directives(line) == {
        ("service",): {"Receipts", "NewFailures"},
        ("service", "change"): {"Receipts"},
        ("service", "status"): {"Receipts"},
        ("service", "error_class"): {"NewFailures"},
    }
    assert (line["status"], line["error_code"], line["error_class"]) == ("failed", 30005, "30xxx")
    assert line["receipt_sid"] == fields["DeliveryReceiptSid"]  # where an operator starts
    assert line["conversation_sid"] == fields["ConversationSid"]
    assert sorted(
        (name, tuple(sorted(dims.items()))) for name, dims, _ in emitted_metrics(json.dumps(line))
    ) == sorted(
        (name, tuple(sorted({"service": line["service"], **extra}.items())))
        for name, extra in [
            ("Receipts", {}),
            ("Receipts", {"change": "new"}),
            ("Receipts", {"status": "failed"}),
            ("NewFailures", {}),
            ("NewFailures", {"error_class": "30xxx"}),
        ]
    )


def test_a_warning_keeps_the_lambda_context(
    ingest: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = invoke(ingest, http_api_event(receipt_fields(), token="forged"))
    assert response["statusCode"] == 403
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [warning] = [line for line in lines if line.get("level") == "WARNING"]
    assert {"function_request_id", "function_name", "cold_start"} <= set(warning)
    [metrics] = [line for line in lines if "_aws" in line]
    assert "SignatureRejected" in directives(metrics)[("service",)]
