"""RetryFunction's policy is checked against the deployment's own receipt retention:
`ReceiptRetentionDays` reaches the function as RECEIPT_TTL_DAYS, and a `max_age_seconds` longer than
it fails the first invocation, naming the field, instead of letting an attempt's claim expire (TTL)
while a retry of that attempt is still allowed."""

from __future__ import annotations

import json

import pytest

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from redeliver.domain.policy_parse import PolicyError
from tests.lambdas import load_function
from tools.stack import deploy

TWO_DAYS = {**DEFAULT_POLICY_DOCUMENT, "max_age_seconds": 2 * 86_400}


def test_a_max_age_longer_than_the_retention_fails_the_first_invocation(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = deploy("short", {"ReceiptRetentionDays": "1", "RetryPolicy": json.dumps(TWO_DAYS)})
    assert stack.environment("RetryFunction")["RECEIPT_TTL_DAYS"] == "1"
    with pytest.raises(PolicyError, match=r"max_age_seconds: must be at most 86400 \(the receipt"):
        load_function("retry", stack.environment("RetryFunction"), monkeypatch)


def test_the_same_policy_loads_where_receipts_are_kept_long_enough(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = deploy("long", {"ReceiptRetentionDays": "2", "RetryPolicy": json.dumps(TWO_DAYS)})
    retry = load_function("retry", stack.environment("RetryFunction"), monkeypatch)
    assert retry.policy.max_age_seconds == 2 * 86_400
