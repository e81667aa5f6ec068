"""redeliver.adapters.sqs.batch: the SQS partial batch response RetryFunction answers Lambda with,
as Powertools' BatchProcessor (EventType.SQS, raise_on_entire_batch_failure=False) answered it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from redeliver.adapters.sqs.batch import NotAnSqsBatch, partial_response


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m{n}", "receiptHandle": f"h{n}", "body": body, "eventSource": "aws:sqs"}
            for n, body in enumerate(bodies)
        ]
    }


def handler(seen: list[str]) -> Any:
    def handle(record: Mapping[str, Any]) -> str:
        seen.append(record["body"])
        if record["body"].startswith("bad"):
            raise RuntimeError(record["body"])
        return "done"

    return handle


def test_only_the_records_that_raised_are_reported_and_every_record_runs_in_order() -> None:
    seen: list[str] = []
    response = partial_response(sqs_event("ok", "bad 1", "ok", "bad 2"), handler(seen))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}
    assert seen == ["ok", "bad 1", "ok", "bad 2"]


def test_a_batch_that_all_succeeded_reports_nothing() -> None:
    assert partial_response(sqs_event("ok", "ok"), handler([])) == {"batchItemFailures": []}


def test_a_batch_whose_every_record_failed_is_answered_not_raised() -> None:
    # Lambda's Errors metric (RetryErrorsAlarm) must mean a crash or a timeout, not bad records.
    response = partial_response(sqs_event("bad", "bad"), handler([]))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}


def test_a_record_missing_its_body_is_that_record_s_failure() -> None:
    event = sqs_event("ok")
    event["Records"].append({"messageId": "broken", "receiptHandle": "h"})
    response = partial_response(event, lambda record: record["body"])
    assert response == {"batchItemFailures": [{"itemIdentifier": "broken"}]}


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": {"m0": {}}}, {"records": []}])
def test_an_event_that_is_not_an_sqs_batch_raises(event: dict[str, Any]) -> None:
    with pytest.raises(NotAnSqsBatch):
        partial_response(event, handler([]))


def test_an_exception_that_is_not_an_error_is_not_swallowed() -> None:
    # As under Powertools: KeyboardInterrupt, SystemExit and the like end the invocation.
    def interrupted(_: Mapping[str, Any]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        partial_response(sqs_event("ok"), interrupted)
