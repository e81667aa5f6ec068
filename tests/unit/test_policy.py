"""The retry policy: validation that names the field, and every rule and edge of `decide`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redeliver.domain.policy import (
    DEFAULT_POLICY_DOCUMENT,
    Decision,
    Failure,
    GiveUp,
    Overrides,
    RetryPolicy,
    Rule,
    Send,
    Shadowed,
    Wait,
    no_jitter,
)
from redeliver.domain.policy import decide as decide_jittered
from redeliver.domain.policy_parse import PolicyError, parse_policy
from redeliver.domain.receipts import EARLIEST_DATE, LATEST_DATE, MAX_INTERVAL

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def decide(policy: RetryPolicy, failure: Failure, now: datetime) -> Decision:
    """The decisions without jitter (its own tests are in test_policy_v2.py)."""
    return decide_jittered(policy, failure, now, no_jitter)


DEFAULT = parse_policy("")


def failure(
    code: int | None = 30003,
    attempt: int = 1,
    failed_after: int = 5,
    recipients: int | None = 1,
    overrides: Overrides | None = None,
) -> Failure:
    return Failure(
        code,
        attempt,
        T0 + timedelta(seconds=failed_after),
        T0,
        recipients,
        overrides or Overrides(),
    )


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the document -------------------------------------------------------------------------------


def test_empty_means_the_default_of_design_md() -> None:
    assert parse_policy("") == parse_policy(DEFAULT_POLICY_DOCUMENT)
    assert parse_policy(None) == DEFAULT
    assert DEFAULT.max_attempts == 3
    assert DEFAULT.max_age_seconds == 86400
    assert DEFAULT.group_conversations == "skip"


def test_parses_json_text() -> None:
    policy = parse_policy(
        json.dumps({"max_attempts": 1, "rules": [{"codes": "*", "action": "retry", "delays": [0]}]})
    )
    assert policy.max_attempts == 1
    assert policy.rules[0].codes is None


def bad(change: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_POLICY_DOCUMENT, **change}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("{not json", "RetryPolicy is not JSON"),
        ("[1, 2]", "RetryPolicy must be a JSON object"),
        (bad({"retries": 3}), "unknown field(s): retries"),
        (bad({"max_attempts": 0}), "max_attempts: must be an integer >= 1"),
        (bad({"max_attempts": "3"}), "max_attempts: must be an integer >= 1"),
        (bad({"max_attempts": True}), "max_attempts: must be an integer >= 1"),
        (bad({"max_age_seconds": -1}), "max_age_seconds"),
        (bad({"group_conversations": "maybe"}), "group_conversations: must be one of skip, allow"),
        (bad({"rules": []}), "rules: must be a non-empty list"),
        (bad({"rules": ["retry"]}), "rules[0]: must be an object"),
        (bad({"rules": [{"codes": [], "action": "retry", "delays": [1]}]}), "rules[0].codes"),
        (
            bad({"rules": [{"codes": ["30003"], "action": "retry", "delays": [1]}]}),
            "rules[0].codes[0]",
        ),
        (bad({"rules": [{"codes": "*", "action": "resend"}]}), "rules[0].action"),
        (bad({"rules": [{"codes": "*", "action": "retry"}]}), "rules[0].delays: a retry rule"),
        (
            bad({"rules": [{"codes": "*", "action": "retry", "delays": [60, -5]}]}),
            "rules[0].delays[1]",
        ),
        (
            bad({"rules": [{"codes": "*", "action": "give_up", "delays": [60]}]}),
            "rules[0].delays: only a retry, template or fallback_sms rule",
        ),
        (
            bad({"rules": [{"codes": "*", "action": "retry", "delays": [1], "when": "x"}]}),
            "rules[0]: unknown field(s): when",
        ),
    ],
)
def test_bad_documents_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(document)
    assert field in str(raised.value)


# -- bounds: what would break a deployment's promises ------------------------------------------

DAY = 86_400


@pytest.mark.parametrize("seconds", [10**12, 10**15])
def test_a_huge_max_age_or_delay_overflows_decide_so_parse_refuses_it(seconds: int) -> None:
    """Before the bounds, such a policy parsed, and `decide` raised OverflowError on every failure
    (`first_sent_at + timedelta(seconds=max_age_seconds)` past year 9999, or past timedelta's own
    limit; the same for `failed_at + delay`): every retry job ended in the DLQ."""
    huge_age = RetryPolicy(3, seconds, "skip", DEFAULT.rules)  # what parse used to return
    huge_delay = RetryPolicy(3, DAY, "skip", (Rule(None, "retry", (seconds,)),))
    for unchecked in (huge_age, huge_delay):
        with pytest.raises(OverflowError):
            decide(unchecked, failure(), at(10))
    with pytest.raises(PolicyError, match="max_age_seconds: must be at most 31536000"):
        parse_policy(bad({"max_age_seconds": seconds}))
    with pytest.raises(PolicyError, match=r"rules\[0\]\.delays\[0\]: must be at most 86400"):
        parse_policy(bad({"rules": [{"codes": "*", "action": "retry", "delays": [seconds]}]}))


def test_max_age_may_not_outlive_the_receipt_retention() -> None:
    """A claim (ATTEMPT#n) is deleted by TTL after the retention: past it, only max_age stops a
    redelivered job from claiming and sending the same attempt again."""
    assert parse_policy(bad({"max_age_seconds": DAY}), retention_days=1).max_age_seconds == DAY
    with pytest.raises(PolicyError, match=r"max_age_seconds: must be at most 86400 \(the receipt"):
        parse_policy(bad({"max_age_seconds": DAY + 1}), retention_days=1)
    with pytest.raises(PolicyError, match="max_age_seconds"):
        parse_policy("", retention_days=0)


def test_the_default_policy_fits_the_shortest_retention() -> None:
    assert parse_policy("", retention_days=1) == DEFAULT  # ReceiptRetentionDays MinValue


@pytest.mark.parametrize(
    ("delays", "complaint"),
    [
        ([60, -1], "rules[0].delays[1]: must be an integer >= 0"),
        ([60, 3601], "rules[0].delays[1]: must be at most 3600 (max_age_seconds"),
        ([10**15], "rules[0].delays[0]: must be at most 3600"),
        ([1.5], "rules[0].delays[0]: must be an integer"),
    ],
)
def test_delays_are_bounded_by_max_age(delays: list[Any], complaint: str) -> None:
    document = {
        "max_age_seconds": 3600,
        "rules": [{"codes": "*", "action": "retry", "delays": delays}],
    }
    with pytest.raises(PolicyError) as raised:
        parse_policy(document)
    assert complaint in str(raised.value)


def test_a_delay_of_max_age_is_still_honoured() -> None:
    policy = parse_policy(
        {"max_age_seconds": 3600, "rules": [{"codes": "*", "action": "retry", "delays": [3600]}]}
    )
    start = Failure(None, 1, T0, T0)
    assert decide(policy, start, T0) == Wait(3600, at(3600))
    assert decide(policy, start, at(3600)) == Send()


def test_the_interval_bound_leaves_room_after_the_last_accepted_date() -> None:
    last = LATEST_DATE - timedelta(milliseconds=1)  # receipts.parse_time accepts up to this
    assert last + MAX_INTERVAL <= datetime.max.replace(tzinfo=UTC)
    assert int(MAX_INTERVAL.total_seconds()) == 365 * DAY


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    """Any document the validation accepts, up to its bounds."""
    max_age = draw(st.integers(1, int(MAX_INTERVAL.total_seconds())))
    delays = draw(st.lists(st.integers(0, max_age), min_size=1, max_size=3))
    return parse_policy(
        {
            "max_attempts": draw(st.integers(1, 10)),
            "max_age_seconds": max_age,
            "group_conversations": draw(st.sampled_from(["skip", "allow"])),
            "rules": [{"codes": "*", "action": "retry", "delays": delays}],
        }
    )


moments = st.datetimes(
    min_value=EARLIEST_DATE.replace(tzinfo=None),
    max_value=LATEST_DATE.replace(tzinfo=None) - timedelta(milliseconds=1),
    timezones=st.just(UTC),
)


@given(
    policy=policies(),
    first_sent=moments,
    failed=moments,
    now=moments,
    attempt=st.integers(1, 12),
    recipients=st.none() | st.integers(0, 3),
)
def test_decide_answers_for_every_accepted_policy_and_date(
    *,
    policy: RetryPolicy,
    first_sent: datetime,
    failed: datetime,
    now: datetime,
    attempt: int,
    recipients: int | None,
) -> None:
    decision = decide(policy, Failure(30003, attempt, failed, first_sent, recipients), now)
    assert isinstance(decision, Send | Wait | GiveUp)
    if isinstance(decision, Wait):
        assert decision.due_at > now


# -- decide ------------------------------------------------------------------------------------


def test_a_due_retry_is_sent() -> None:
    assert decide(DEFAULT, failure(30003), at(65)) == Send()


def test_an_early_retry_waits_for_its_delay_from_the_failure() -> None:
    assert decide(DEFAULT, failure(30003), at(10)) == Wait(55, at(65))


@pytest.mark.parametrize(("attempt", "delay"), [(1, 60), (2, 900), (3, 3600)])
def test_each_attempt_has_its_own_delay(attempt: int, delay: int) -> None:
    decision = decide(DEFAULT, failure(30001, attempt=attempt), at(5))
    assert decision == Wait(delay, at(5 + delay))


def test_the_last_delay_repeats() -> None:
    policy = parse_policy(
        bad({"max_attempts": 5, "rules": [{"codes": "*", "action": "retry", "delays": [10, 20]}]})
    )
    assert decide(policy, failure(attempt=4), at(5)) == Wait(20, at(25))


@pytest.mark.parametrize("code", [30002, 30004, 30007, 30034, 63003, 63016, 63024])
def test_permanent_errors_give_up_at_once(code: int) -> None:
    assert decide(DEFAULT, failure(code), at(5)) == GiveUp("permanent_error")


@pytest.mark.parametrize("code", [63017, 12345, None])
def test_star_matches_any_other_code_and_no_code(code: int | None) -> None:
    assert decide(DEFAULT, failure(code), at(5)) == Wait(300, at(305))


def test_first_matching_rule_wins() -> None:
    policy = parse_policy(
        bad(
            {
                "rules": [
                    {"codes": [30003], "action": "give_up"},
                    {"codes": [30003], "action": "retry", "delays": [1]},
                ]
            }
        )
    )
    assert decide(policy, failure(30003), at(100)) == GiveUp("permanent_error")


def test_no_matching_rule_gives_up() -> None:
    policy = parse_policy(bad({"rules": [{"codes": [30001], "action": "retry", "delays": [1]}]}))
    assert decide(policy, failure(30003), at(100)) == GiveUp("no_matching_rule")


def test_beyond_max_attempts_gives_up() -> None:
    assert decide(DEFAULT, failure(attempt=3), at(3_605)) == Send()
    assert decide(DEFAULT, failure(attempt=4), at(100)) == GiveUp("max_attempts")


def test_past_max_age_gives_up_even_when_due() -> None:
    assert decide(DEFAULT, failure(failed_after=86_000), at(86_401)) == GiveUp("max_age")


def test_a_delay_that_would_end_past_max_age_gives_up_now() -> None:
    late = failure(30001, attempt=3, failed_after=86_000)  # 3600 s more would pass a day
    assert decide(DEFAULT, late, at(86_001)) == GiveUp("max_age")


def test_group_conversations_are_skipped_unless_allowed() -> None:
    group = failure(recipients=2)
    assert decide(DEFAULT, group, at(100)) == GiveUp("group_conversation")
    allowing = parse_policy(bad({"group_conversations": "allow"}))
    assert decide(allowing, group, at(100)) == Send()


def test_unknown_recipients_do_not_decide_group_yet() -> None:
    assert decide(DEFAULT, failure(recipients=None), at(100)) == Send()


def test_a_rule_an_earlier_one_shadows_is_found() -> None:
    policy = parse_policy(
        {
            "rules": [
                {"codes": [1, 2], "action": "give_up"},
                {"codes": [2, 3], "action": "retry", "delays": [60]},
                {"codes": [3, 1], "action": "suppress"},
                {"codes": "*", "action": "retry", "delays": [60]},
                {"codes": "*", "action": "give_up"},
            ]
        }
    )
    assert policy.shadowed() == [
        Shadowed(1, 0, frozenset({2}), whole=False),
        Shadowed(2, 0, frozenset({1}), whole=False),
        Shadowed(2, 1, frozenset({3}), whole=True),
        Shadowed(4, 3, None, whole=True),
    ]
    assert DEFAULT.shadowed() == []


def test_a_message_can_disable_its_own_retries() -> None:
    off = Overrides.from_attributes({"redeliver": {"enabled": False}})
    assert decide(DEFAULT, failure(overrides=off), at(100)) == GiveUp("disabled_by_message")


@pytest.mark.parametrize(
    "value", [False, "false", "False", " FALSE ", "0", 0, "no", "off", None, "", "disabled", [], {}]
)
def test_anything_but_a_clear_yes_disables_a_messages_retries(value: Any) -> None:
    """The override may only narrow: a string "false" (attributes built by string templating)
    disables as false does, and a value that says neither yes nor no errs the same way."""
    off = Overrides.from_attributes({"redeliver": {"enabled": value}})
    assert off.enabled is False
    assert decide(DEFAULT, failure(overrides=off), at(100)) == GiveUp("disabled_by_message")


@pytest.mark.parametrize("value", [True, "true", "True", " TRUE ", "1", 1, "yes", "on"])
def test_a_clear_yes_leaves_a_messages_retries_on(value: Any) -> None:
    assert Overrides.from_attributes({"redeliver": {"enabled": value}}).enabled is True
    assert Overrides.from_attributes({"redeliver": {"root": "IM1"}}).enabled is True  # absent


def test_a_message_can_lower_but_not_raise_max_attempts() -> None:
    lower = Overrides.from_attributes({"redeliver": {"max_attempts": 1}})
    higher = Overrides.from_attributes({"redeliver": {"max_attempts": 10}})
    assert decide(DEFAULT, failure(attempt=2, overrides=lower), at(5_000)) == GiveUp("max_attempts")
    assert decide(DEFAULT, failure(attempt=4, overrides=higher), at(5_000)) == GiveUp(
        "max_attempts"
    )


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"redeliver": "yes"},
        {"redeliver": {"max_attempts": "2"}},
        {"redeliver": {"max_attempts": True}},
    ],
)
def test_overrides_that_are_not_valid_change_nothing(attributes: dict[str, Any]) -> None:
    assert Overrides.from_attributes(attributes) == Overrides()
