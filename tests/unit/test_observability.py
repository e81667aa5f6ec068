"""redeliver.observability's EMF emitter: as few documents as CloudWatch allows, no series lost,
none made up, flushed however the handler ends."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from redeliver import observability
from redeliver.observability import Emf
from tools.lambdas import emitted_metrics


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Redeliver")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stack")


def emitter() -> tuple[Emf, list[str]]:
    lines: list[str] = []
    return Emf(write=lines.append), lines


def series(lines: list[str]) -> list[tuple[str, dict[str, str], float]]:
    return sorted(emitted_metrics("\n".join(lines)), key=repr)


def directives(line: str) -> dict[tuple[str, ...], list[str]]:
    return {
        tuple(group): [m["Name"] for m in d["Metrics"]]
        for d in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for group in d["Dimensions"]
    }


def test_series_of_different_dimension_sets_share_one_document_without_crossing() -> None:
    emf, lines = emitter()
    emf.count("Receipts")
    emf.count("NewReceipts")
    emf.count("ReceiptsByStatus", 1, (("status", "sent"),))
    emf.count("NewFailuresByClass", 1, (("error_class", "30xxx"),))
    emf.flush()
    [line] = lines
    assert directives(line) == {
        ("service",): ["Receipts", "NewReceipts"],
        ("service", "status"): ["ReceiptsByStatus"],
        ("service", "error_class"): ["NewFailuresByClass"],
    }
    assert series(lines) == sorted(
        [
            ("Receipts", {"service": "stack"}, 1),
            ("NewReceipts", {"service": "stack"}, 1),
            ("ReceiptsByStatus", {"service": "stack", "status": "sent"}, 1),
            ("NewFailuresByClass", {"service": "stack", "error_class": "30xxx"}, 1),
        ],
        key=repr,
    )
    assert " " not in line  # compact JSON


def test_one_count_under_several_dimension_sets_is_one_directive_and_one_value() -> None:
    """`Receipts` alone, by change and by status: three series, one metric, one value."""
    emf, lines = emitter()
    emf.count(
        "Receipts", 1, (("change", "new"), ("status", "sent")), ((), ("change",), ("status",))
    )
    emf.flush()
    [line] = lines
    [directive] = json.loads(line)["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service"], ["service", "change"], ["service", "status"]]
    assert directive["Metrics"] == [{"Name": "Receipts"}]
    assert json.loads(line)["Receipts"] == 1
    assert series(lines) == sorted(
        [
            ("Receipts", {"service": "stack"}, 1),
            ("Receipts", {"service": "stack", "change": "new"}, 1),
            ("Receipts", {"service": "stack", "status": "sent"}, 1),
        ],
        key=repr,
    )


def test_count_each_counts_alone_unless_told_not_to() -> None:
    emf, lines = emitter()
    previous = observability.metrics
    observability.metrics = emf
    try:
        observability.count_each("Receipts", {"change": "latest"}, alone=False)
        observability.count_each("NewFailures", {"error_class": "30xxx"})
    finally:
        observability.metrics = previous
    emf.flush()
    assert [(n, d) for n, d, _ in series(lines)] == sorted(
        [
            ("Receipts", {"service": "stack", "change": "latest"}),  # no ("Receipts", service)
            ("NewFailures", {"service": "stack"}),
            ("NewFailures", {"service": "stack", "error_class": "30xxx"}),
        ],
        key=repr,
    )


def test_a_batch_of_receipts_that_changed_differently_keeps_every_series() -> None:
    emf, lines = emitter()
    everyway = ((), ("change",), ("status",))
    emf.count("Receipts", 1, (("change", "new"), ("status", "sent")), everyway)
    emf.count("Receipts", 1, (("change", "duplicate"),), ((), ("change",)))
    emf.count("Receipts", 1, (("change", "new"), ("status", "sent")), everyway)
    emf.flush()
    assert len(lines) == 2  # `change` needs two values, and `Receipts` is one root key
    counted: dict[tuple[str, ...], float] = {}
    for _, dims, value in series(lines):
        key = tuple(sorted(dims.items()))
        counted[key] = counted.get(key, 0) + value
    assert counted == {
        (("service", "stack"),): 3,
        (("change", "new"), ("service", "stack")): 2,
        (("change", "duplicate"), ("service", "stack")): 1,
        (("service", "stack"), ("status", "sent")): 2,
    }


def test_a_dimension_set_must_name_given_dimensions() -> None:
    emf, _ = emitter()
    with pytest.raises(ValueError, match="dimension sets"):
        emf.count("Receipts", 1, (("change", "new"),), (("status",),))
    with pytest.raises(ValueError, match="dimension sets"):
        emf.count("Receipts", 1, (), ())


def test_a_dimension_with_two_values_splits_the_document_and_keeps_every_series() -> None:
    emf, lines = emitter()
    emf.count("RetryGaveUp")
    emf.count("RetryGaveUpByReason", 1, (("reason", "permanent_error"),))
    emf.count("RetryGaveUp")
    emf.count("RetryGaveUpByReason", 1, (("reason", "max_attempts"),))
    emf.flush()
    assert len(lines) == 2
    assert series(lines) == sorted(
        [
            ("RetryGaveUp", {"service": "stack"}, 1),
            ("RetryGaveUp", {"service": "stack"}, 1),  # one value array: [1, 1]
            ("RetryGaveUpByReason", {"service": "stack", "reason": "permanent_error"}, 1),
            ("RetryGaveUpByReason", {"service": "stack", "reason": "max_attempts"}, 1),
        ],
        key=repr,
    )


def test_a_name_counted_under_two_dimension_sets_gets_a_document_each() -> None:
    emf, lines = emitter()
    emf.count("X", 2)
    emf.count("X", 3, (("status", "sent"),))
    emf.flush()
    assert len(lines) == 2
    assert series(lines) == sorted(
        [("X", {"service": "stack"}, 2), ("X", {"service": "stack", "status": "sent"}, 3)],
        key=repr,
    )


def test_no_document_holds_more_than_a_hundred_metrics() -> None:
    emf, lines = emitter()
    for n in range(150):
        emf.count(f"M{n}")
    emf.flush()
    assert [len(json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for line in lines] == [
        100,
        50,
    ]
    assert {name for name, _, _ in series(lines)} == {f"M{n}" for n in range(150)}


def test_no_metric_holds_more_than_a_hundred_values() -> None:
    """EMF: a metric's value array holds at most 100 values (Powertools flushes at 100 too). A
    reconcile run records every receipt Twilio reports: 150 alike are 150 values of one series,
    in two documents, none lost."""
    emf, lines = emitter()
    for _ in range(150):
        emf.count("ReconciledFailures")
        emf.count("Receipts", 1, (("change", "duplicate"),), ((), ("change",)))
    emf.flush()
    assert (
        max(len(v) for line in lines for v in json.loads(line).values() if isinstance(v, list))
        <= 100
    )
    assert sum(v for name, _, v in series(lines) if name == "ReconciledFailures") == 150
    assert (
        sum(v for name, dims, v in series(lines) if name == "Receipts" and dims.get("change"))
        == 150
    )
    assert len(lines) == 2


def test_the_decorator_flushes_when_the_handler_raises() -> None:
    emf, lines = emitter()

    @emf.log_metrics
    def handler(event: dict[str, Any], context: object) -> None:
        emf.count("IngestFaults")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, None)
    assert [name for name, _, _ in series(lines)] == ["IngestFaults"]
    emf.flush()
    assert len(lines) == 1  # and nothing was left behind for the next invocation


def test_the_receipt_line_rides_on_the_document_unless_a_key_disagrees() -> None:
    emf, lines = emitter()
    emf.count("ReceiptsByStatus", 1, (("status", "other"),))
    emf.ride({"message_sid": "IMa", "status": "delivered_to_handset", "error_code": None})
    emf.flush()
    metrics_line, receipt_line = (json.loads(line) for line in lines)
    assert metrics_line["status"] == "other"
    assert receipt_line == {"message_sid": "IMa", "status": "delivered_to_handset"}

    emf.count("ReceiptsByStatus", 1, (("status", "sent"),))
    emf.ride({"message_sid": "IMb", "status": "sent"})
    emf.flush()
    [line] = lines[2:]
    assert json.loads(line)["message_sid"] == "IMb"


def test_a_rider_never_shadows_a_metric_value() -> None:
    emf, lines = emitter()
    emf.count("Receipts")
    emf.ride({"Receipts": "not a number"})
    emf.flush()
    assert series(lines) == [("Receipts", {"service": "stack"}, 1)]
    assert json.loads(lines[1]) == {"Receipts": "not a number"}


def test_a_batch_prints_each_earlier_receipt_line_at_once_and_the_last_rides() -> None:
    emf, lines = emitter()
    emf.ride({"message_sid": "IMa"})
    assert [json.loads(line) for line in lines] == []
    emf.count("Receipts")
    emf.ride({"message_sid": "IMb"})
    assert [json.loads(line) for line in lines] == [{"message_sid": "IMa"}]
    emf.flush()
    assert json.loads(lines[1])["message_sid"] == "IMb"


def test_no_receipt_line_above_info(monkeypatch: pytest.MonkeyPatch) -> None:
    emf, lines = emitter()
    monkeypatch.setattr(observability.logger._logger, "level", logging.WARNING)
    emf.count("Receipts")
    emf.ride({"message_sid": "IMa"})
    emf.flush()
    [line] = lines
    assert "message_sid" not in json.loads(line)


def test_nothing_counted_prints_nothing() -> None:
    emf, lines = emitter()
    emf.flush()
    assert lines == []


@pytest.mark.parametrize(
    "document",
    [
        {
            "_aws": {
                "Timestamp": 1,
                "CloudWatchMetrics": [
                    {"Namespace": "N", "Dimensions": [["service"]], "Metrics": [{"Name": "Lost"}]}
                ],
            },
            "service": "s",
        },
        {
            "_aws": {
                "Timestamp": 1,
                "CloudWatchMetrics": [
                    {"Namespace": "N", "Dimensions": [["status"]], "Metrics": [{"Name": "M"}]}
                ],
            },
            "M": 1,
        },
        {
            "_aws": {
                "CloudWatchMetrics": [
                    {"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}
                ]
            },
            "M": 1,
        },
        {
            "_aws": {
                "Timestamp": 1,
                "CloudWatchMetrics": [
                    {"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}
                ],
            },
            "M": [1] * 101,
        },
    ],
    ids=[
        "metric without a value",
        "dimension without a value",
        "no timestamp",
        "over 100 values",
    ],
)
def test_the_parser_refuses_a_document_cloudwatch_would_not_read_whole(
    document: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="EMF"):
        list(emitted_metrics(json.dumps(document)))
