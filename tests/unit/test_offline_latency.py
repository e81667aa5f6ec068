"""tools.latency: the offline report's failure-to-resend time and SQS round trip, on synthetic
timestamps (the e2e test checks the report carries them from a real run)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools.latency import Latency, failure_to_resend, immediate_codes, percentile, retry_of
from tools.offline.policy import OFFLINE_POLICY


def created(sid: str, retry_of: str | None, **extra: Any) -> dict[str, Any]:
    marker = {"redeliver": {"retry_of": retry_of, "root": "IMroot", "attempt": 1}}
    return {"sid": sid, "attributes": json.dumps(marker if retry_of else {"order": 1}), **extra}


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [
        ([], 0.5, 0.0),
        ([3.0], 0.99, 3.0),
        ([float(n) for n in range(1, 11)], 0.5, 5.0),  # nearest rank: ceil(0.5 * 10) = 5th
        ([float(n) for n in range(10, 0, -1)], 0.5, 5.0),  # order does not matter
        ([float(n) for n in range(1, 101)], 0.99, 99.0),
        ([float(n) for n in range(1, 11)], 0.99, 10.0),  # few samples: p99 is the largest
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], share: float, expected: float) -> None:
    assert percentile(values, share) == expected


def test_each_failure_is_paired_with_the_first_create_that_resends_it() -> None:
    posted = {
        "IMa": (10.0, 63016),  # resent at 10.4
        "IMb": (11.0, 63024),  # resent twice (10.9 is not possible, but the first counts)
        "IMc": (12.0, 30003),  # a code with a wait: not counted
        "IMd": (13.0, 63032),  # never resent (given up): no end, left out
    }
    messages = [
        created("IMx", "IMa"),
        created("IMy", "IMb"),
        created("IMz", "IMb"),
        created("IMw", "IMc"),
        created("IMo", None),  # an app's message, no marker
        created("IMq", "IMnever"),  # resends a failure whose webhook was never answered
    ]
    at = {"IMx": 10.4, "IMy": 11.75, "IMz": 11.5, "IMw": 80.0, "IMo": 1.0, "IMq": 3.0}
    resends = failure_to_resend(posted, messages, at, [63016, 63024, 63032])
    assert sorted(round(f, 6) for f in resends.seconds) == [0.4, 0.5]
    assert resends.before_webhook == 0


def test_a_create_the_simulator_has_no_time_for_is_left_out() -> None:
    posted = {"IMa": (10.0, 63016)}
    assert failure_to_resend(posted, [created("IMx", "IMa")], {}, [63016]).seconds == []


def test_a_resend_stored_before_any_failure_webhook_is_counted_apart_never_negative() -> None:
    """The reconciler found the failure while its webhook was still on the way (delayed, or
    reordered behind others): the resend precedes the post, and no webhook caused it."""
    posted = {"IMa": (10.0, 63016), "IMb": (20.0, 63016)}
    messages = [created("IMx", "IMa"), created("IMy", "IMb")]
    resends = failure_to_resend(posted, messages, {"IMx": 9.6, "IMy": 20.25}, [63016])
    assert resends.seconds == [0.25]
    assert resends.before_webhook == 1
    lines = Latency(resends.seconds, [0.1], [63016], resends.before_webhook).lines()
    assert "1 resend(s) stored before any failure webhook was posted" in lines[-1]
    assert "p50 250 ms, p99 250 ms over 1 failures" in lines[0]


def test_retry_of_reads_the_marker_and_nothing_else() -> None:
    assert retry_of(created("IMx", "IMa")) == "IMa"
    assert retry_of(created("IMx", None)) is None
    assert retry_of({"sid": "IMx", "attributes": "not json"}) is None
    assert retry_of({"sid": "IMx", "attributes": '{"redeliver": "x"}'}) is None
    assert retry_of({"sid": "IMx"}) is None


def test_immediate_codes_are_those_whose_first_rule_waits_zero_seconds() -> None:
    policy = {
        "rules": [
            {"codes": [1, 2], "action": "template", "delays": [0]},
            {"codes": [2, 3], "action": "retry", "delays": [0, 60]},  # 2 is the rule above's
            {"codes": [4], "action": "give_up"},
            {"codes": [5], "action": "retry", "delays": [0, 0]},
            {"codes": "*", "action": "retry", "delays": [0]},  # every other code: not listed
        ]
    }
    assert immediate_codes(policy) == [1, 2, 5]


def test_the_offline_policy_s_immediate_codes_are_its_template_and_sms_fallback_ones() -> None:
    assert immediate_codes(OFFLINE_POLICY) == [63016, 63024, 63032]


def test_the_report_lines_give_both_percentiles_and_their_ratio() -> None:
    resend = [0.2, 0.3, 0.4, 1.0]
    trip = [0.1, 0.1, 0.2, 0.25]
    first, second = Latency(resend, trip, [63016]).lines()
    assert "p50 300 ms, p99 1000 ms over 4 failures with a 0 s rule (63016)" in first
    assert "p50 100 ms, p99 250 ms over 4 probes" in second
    assert "3.0x that at p50, 4.0x at p99" in second


def test_the_report_says_when_there_is_nothing_to_measure() -> None:
    assert "not measured: no failure" in Latency([], [0.1], [63016]).lines()[0]
    assert "not measured: no probe" in Latency([0.1], [], [63016]).lines()[0]
