"""Policy v2 (DESIGN.md): the document, each action's decision, jitter and quiet hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from redeliver.domain.policy import (
    DEFAULT_POLICY_DOCUMENT,
    Failure,
    GiveUp,
    RetryPolicy,
    Send,
    Suppress,
    Template,
    Wait,
    decide,
    no_jitter,
    stable_jitter,
)
from redeliver.domain.policy_parse import PolicyError, parse_policy
from redeliver.domain.quiet_hours import QuietHours, e164, is_whatsapp, zones_of_number

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HX = "HX" + "0" * 31 + "a"
DESIGN_V2 = {
    "max_attempts": 3,
    "max_age_seconds": 86400,
    "group_conversations": "skip",
    "quiet_hours": {
        "start": "21:00", "end": "08:00", "timezone": "recipient", "default_timezone": "UTC"
    },
    "suppress_days": 90,
    "rules": [
        {
            "codes": [63016], "action": "template", "content_sid": HX,
            "content_variables": {"1": "{body}"}, "delays": [0],
        },
        {"codes": [63024, 63032], "action": "fallback_sms", "from": "+15550100000", "delays": [0]},
        {"codes": [21610, 30005, 30006], "action": "suppress"},
        {"codes": [30007, 30034], "action": "give_up"},
        {"codes": [30001, 30003, 30008], "action": "retry", "delays": [60, 900, 3600]},
        {"codes": "*", "action": "retry", "delays": [300]},
    ],
}  # fmt: skip
DESIGN_V1 = {
    "max_attempts": 3,
    "max_age_seconds": 86400,
    "group_conversations": "skip",
    "rules": [
        {"codes": [30001, 30003, 30008], "action": "retry", "delays": [60, 900, 3600]},
        {"codes": [30002, 30004, 30005, 30007, 30034, 21610, 63003, 63024], "action": "give_up"},
        {"codes": "*", "action": "retry", "delays": [300]},
    ],
}
V2 = parse_policy(DESIGN_V2)
NEW_YORK = "+12125550100"
LOS_ANGELES = "+14155550100"


def failure(
    code: int | None = 30003,
    *,
    attempt: int = 1,
    failed_at: datetime = T0,
    first_sent_at: datetime | None = None,
    address: str | None = None,
    known: bool = True,
    key: str = "IMroot#1",
) -> Failure:
    return Failure(
        code,
        attempt,
        failed_at,
        first_sent_at or failed_at,
        1,
        key=key,
        address=address,
        address_known=known,
    )


def without_quiet(document: dict[str, Any]) -> RetryPolicy:
    return parse_policy({k: v for k, v in document.items() if k != "quiet_hours"})


# -- the document ---------------------------------------------------------------------------


def test_the_design_md_v2_example_parses() -> None:
    assert [r.action for r in V2.rules] == [
        "template",
        "fallback_sms",
        "suppress",
        "give_up",
        "retry",
        "retry",
    ]
    assert V2.rules[0].template == Template(HX, {"1": "{body}"})
    assert V2.rules[1].sms_from == "+15550100000"
    assert V2.suppress_days == 90
    assert V2.quiet_hours == QuietHours(time(21), time(8), "recipient", "UTC")


def test_every_v1_document_keeps_its_meaning() -> None:
    v1 = parse_policy(DESIGN_V1)
    assert v1.quiet_hours is None
    assert [(r.codes, r.action, r.delays) for r in v1.rules][1] == (
        frozenset({30002, 30004, 30005, 30007, 30034, 21610, 63003, 63024}),
        "give_up",
        (),
    )
    for code in (30005, 21610):  # v1 gave these up; a v1 document still does
        assert decide(v1, failure(code), T0, no_jitter) == GiveUp("permanent_error")


def test_template_and_fallback_delays_default_to_now() -> None:
    policy = parse_policy(
        {
            "rules": [
                {"codes": [1], "action": "template", "content_sid": HX},
                {"codes": [2], "action": "fallback_sms", "from": "+15550100000"},
            ]
        }
    )
    assert [r.delays for r in policy.rules] == [(0,), (0,)]
    assert policy.rules[0].template == Template(HX, {})


def v2(change: dict[str, Any]) -> dict[str, Any]:
    return {**DESIGN_V2, **change}


def rule(**fields: Any) -> dict[str, Any]:
    return v2({"rules": [{"codes": [63016], **fields}]})


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (rule(action="template"), "rules[0].content_sid: must be a Content SID"),
        (rule(action="template", content_sid="HX12"), "rules[0].content_sid"),
        (
            rule(action="template", content_sid=HX, content_variables={"1": 2}),
            "rules[0].content_variables: must be an object of strings",
        ),
        (rule(action="template", content_sid=HX, delays=[]), "rules[0].delays"),
        (rule(action="fallback_sms"), "rules[0].from: must be an E.164"),
        (rule(action="fallback_sms", **{"from": "5550100000"}), "rules[0].from"),
        (rule(action="fallback_sms", **{"from": "+1"}), "rules[0].from"),
        (
            rule(action="fallback_sms", **{"from": "+15550100000", "delays": [-1]}),
            "rules[0].delays[0]",
        ),
        (rule(action="suppress", delays=[5]), "rules[0].delays: only a retry, template"),
        (rule(action="retry", delays=[5], content_sid=HX), "rules[0].content_sid: not a field"),
        (rule(action="give_up", **{"from": "+15550100000"}), "rules[0].from: not a field"),
        (rule(action="suppress", content_variables={}), "rules[0].content_variables: not a"),
        (rule(action="resend"), "rules[0].action: must be one of retry, give_up, template"),
        (v2({"suppress_days": 0}), "suppress_days: must be an integer >= 1"),
        (v2({"suppress_days": 3651}), "suppress_days: must be at most 3650"),
        (v2({"suppress_days": "90"}), "suppress_days"),
        (v2({"quiet_hours": "21-8"}), "quiet_hours: must be an object"),
        (v2({"quiet_hours": {"start": "21:00"}}), "quiet_hours.end: must be a time of day"),
        (v2({"quiet_hours": {"start": "9pm", "end": "08:00"}}), "quiet_hours.start"),
        (v2({"quiet_hours": {"start": "24:00", "end": "08:00"}}), "quiet_hours.start"),
        (v2({"quiet_hours": {"start": "08:00", "end": "08:00"}}), "quiet_hours.end: must differ"),
        (
            v2({"quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Mars/Olympus"}}),
            'quiet_hours.timezone: must be "recipient" or an IANA time zone',
        ),
        (
            v2({"quiet_hours": {"start": "21:00", "end": "08:00", "default_timezone": "EST5"}}),
            "quiet_hours.default_timezone: must be an IANA time zone",
        ),
        (
            v2({"quiet_hours": {"start": "21:00", "end": "08:00", "default_timezone": 1}}),
            "quiet_hours.default_timezone",
        ),
        (
            v2({"quiet_hours": {"start": "21:00", "end": "08:00", "zone": "UTC"}}),
            "quiet_hours: unknown field(s): zone",
        ),
    ],
)
def test_bad_v2_documents_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(document)
    assert field in str(raised.value)


# -- the default policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "decision"),
    [
        (30001, Wait(60, T0 + timedelta(seconds=60))),
        (30500, Wait(60, T0 + timedelta(seconds=60))),
        (63018, Wait(60, T0 + timedelta(seconds=60))),
        (30003, Wait(60, T0 + timedelta(seconds=60))),
        (30008, Wait(60, T0 + timedelta(seconds=60))),
        (30450, Wait(1800, T0 + timedelta(seconds=1800))),
        (30005, Suppress(90)),
        (30006, Suppress(90)),
        (21610, Suppress(90)),
        (30007, GiveUp("permanent_error")),
        (30034, GiveUp("permanent_error")),
        (63016, GiveUp("permanent_error")),  # unless a template rule is configured (README)
        (12345, Wait(300, T0 + timedelta(seconds=300))),
    ],
)
def test_the_default_policy_follows_twilios_guidance(code: int, decision: Any) -> None:
    assert decide(parse_policy(""), failure(code), T0, no_jitter) == decision


def test_only_codes_the_star_rule_caught_are_unmapped() -> None:
    default = parse_policy(DEFAULT_POLICY_DOCUMENT)
    assert default.unmapped(12345)
    assert not default.unmapped(30003)
    assert not default.unmapped(None)  # no code at all: nothing to map
    assert not parse_policy({"rules": [{"codes": [1], "action": "give_up"}]}).unmapped(2)


# -- each action -----------------------------------------------------------------------------


def test_template_sends_the_rules_template() -> None:
    decision = decide(V2, failure(63016), T0, no_jitter)
    assert decision == Send("template", Template(HX, {"1": "{body}"}))


def test_template_variables_render_the_body_and_the_message_wins() -> None:
    template = Template(HX, {"1": "{body}", "2": "Hi {body}!", "3": "fixed"})
    assert template.render("see you") == {"1": "see you", "2": "Hi see you!", "3": "fixed"}
    assert template.render(None) == {"1": "", "2": "Hi !", "3": "fixed"}
    assert template.render("x", {"3": "own", "4": 5}) == {
        "1": "x",
        "2": "Hi x!",
        "3": "own",
        "4": "5",
    }


def test_fallback_sms_sends_from_the_rules_number() -> None:
    decision = decide(V2, failure(63024), T0, no_jitter)
    assert decision == Send("fallback_sms", None, "+15550100000")


@pytest.mark.parametrize("attempt", [1, 4])  # suppression does not depend on the count
def test_suppress_suppresses_for_suppress_days(attempt: int) -> None:
    assert decide(V2, failure(21610, attempt=attempt), T0, no_jitter) == Suppress(90)


def test_a_retry_rule_still_counts_attempts_and_age() -> None:
    assert decide(V2, failure(63016, attempt=4), T0, no_jitter) == GiveUp("max_attempts")


# -- jitter ------------------------------------------------------------------------------------


@given(key=st.text(max_size=20), delay=st.integers(0, 3600))
def test_jitter_stays_within_ten_percent_and_is_stable(key: str, delay: int) -> None:
    policy = without_quiet(v2({"rules": [{"codes": "*", "action": "retry", "delays": [delay]}]}))
    one = failure(key=key)
    first = decide(policy, one, T0)
    assert decide(policy, one, T0) == first  # the same failure asked again: the same answer
    if delay == 0:
        assert first == Send()
    else:
        assert isinstance(first, Wait)
        assert 0.9 * delay <= (first.due_at - T0).total_seconds() <= 1.1 * delay


def test_jitter_spreads_a_burst() -> None:
    policy = without_quiet(DESIGN_V2)
    decisions = [decide(policy, failure(30001, key=f"IM{n}#1"), T0) for n in range(50)]
    dues = {d.due_at for d in decisions if isinstance(d, Wait)}
    assert len(dues) > 40
    assert min(dues) >= T0 + timedelta(seconds=54)
    assert max(dues) <= T0 + timedelta(seconds=66)


def test_jitter_is_injectable() -> None:
    policy = without_quiet(DESIGN_V2)
    low, high = (lambda _: 0.9), (lambda _: 1.1)
    assert decide(policy, failure(30001), T0, low) == Wait(54, T0 + timedelta(seconds=54))
    assert decide(policy, failure(30001), T0, high) == Wait(66, T0 + timedelta(seconds=66))
    wild = decide(policy, failure(30001), T0, lambda _: 5.0)  # clamped to the bound
    assert wild == Wait(66, T0 + timedelta(seconds=66))
    rng = random.Random(7)
    assert isinstance(decide(policy, failure(30001), T0, lambda _: rng.uniform(0.9, 1.1)), Wait)


def test_jitter_never_carries_a_wait_past_max_age() -> None:
    policy = parse_policy(
        {"max_age_seconds": 3600, "rules": [{"codes": "*", "action": "retry", "delays": [3600]}]}
    )
    decision = decide(policy, failure(), T0, lambda _: 1.1)
    assert decision == Wait(3600, T0 + timedelta(seconds=3600))
    assert decide(policy, failure(), T0 + timedelta(seconds=3600), lambda _: 1.1) == Send()


def test_stable_jitter_depends_on_the_failures_key() -> None:
    assert stable_jitter(failure(key="a")) == stable_jitter(failure(key="a"))
    assert stable_jitter(failure(key="a")) != stable_jitter(failure(key="b"))


# -- quiet hours -------------------------------------------------------------------------------

NIGHT = QuietHours(time(21), time(8), "recipient", "UTC")
LUNCH = QuietHours(time(12), time(13, 30), "recipient", "Europe/Paris")


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "until"),
    [
        (local("America/New_York", 2026, 6, 1, 20, 59), None),
        (local("America/New_York", 2026, 6, 1, 21, 0), local("America/New_York", 2026, 6, 2, 8)),
        (local("America/New_York", 2026, 6, 1, 23, 30), local("America/New_York", 2026, 6, 2, 8)),
        (local("America/New_York", 2026, 6, 2, 0, 0), local("America/New_York", 2026, 6, 2, 8)),
        (local("America/New_York", 2026, 6, 2, 7, 59), local("America/New_York", 2026, 6, 2, 8)),
        (local("America/New_York", 2026, 6, 2, 8, 0), None),
        (local("America/New_York", 2026, 6, 2, 12, 0), None),
    ],
)
def test_a_window_across_midnight(moment: datetime, until: datetime | None) -> None:
    assert NIGHT.until(NEW_YORK, moment) == (until.astimezone(UTC) if until else None)


def test_a_window_within_a_day() -> None:
    paris = "+33612345678"
    assert LUNCH.until(paris, local("Europe/Paris", 2026, 6, 1, 11, 59)) is None
    noon = local("Europe/Paris", 2026, 6, 1, 12, 0)
    assert LUNCH.until(paris, noon) == local("Europe/Paris", 2026, 6, 1, 13, 30)
    assert LUNCH.until(paris, local("Europe/Paris", 2026, 6, 1, 13, 30)) is None
    assert LUNCH.until(paris, local("Europe/Paris", 2026, 6, 1, 23, 0)) is None


def test_the_recipients_zone_not_the_workers() -> None:
    """22:00 in New York is 19:00 in Los Angeles: one waits, the other goes."""
    moment = local("America/New_York", 2026, 6, 1, 22, 0)
    assert NIGHT.until(NEW_YORK, moment) is not None
    assert NIGHT.until(LOS_ANGELES, moment) is None
    assert NIGHT.until("whatsapp:" + NEW_YORK, moment) is not None  # the channel prefix goes


def test_clocks_going_forward() -> None:
    """US DST began 2026-03-08 at 02:00 EST: the night is an hour shorter in UTC."""
    before = local("America/New_York", 2026, 3, 7, 23, 0)  # EST, UTC-5
    end = NIGHT.until(NEW_YORK, before)
    assert end == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT, UTC-4
    assert end - before.astimezone(UTC) == timedelta(hours=8)  # 9 wall-clock hours, 8 real


def test_clocks_going_back() -> None:
    """US DST ended 2026-11-01 at 02:00 EDT: the night is an hour longer in UTC; both 01:30s
    are inside."""
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert NIGHT.until(NEW_YORK, first) == NIGHT.until(NEW_YORK, second)
    assert NIGHT.until(NEW_YORK, first) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_a_window_edge_inside_the_skipped_hour() -> None:
    """An end of 02:30 on the night clocks skip 02:00-03:00: it comes at 03:30 EDT, the same
    instant as 02:30 EST would be, and a send then is outside."""
    odd = QuietHours(time(1), time(2, 30), "America/New_York", "UTC")
    moment = local("America/New_York", 2026, 3, 8, 1, 30)
    end = odd.until(None, moment)
    assert end == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert odd.until(None, end) is None


BERLIN_LATE = QuietHours(time(22), time(2, 30), "Europe/Berlin", "UTC")


def test_inside_the_repeated_hour_the_window_ends_at_its_second_end() -> None:
    """Berlin went back from 03:00 CEST to 02:00 CET on 2026-10-25: 02:00-03:00 came twice. At
    02:15 CET (the second time) the window's 02:30 CEST is already past; it ends at 02:30 CET."""
    first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC)  # 02:15 CEST
    second = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET
    assert BERLIN_LATE.until(None, first) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert BERLIN_LATE.until(None, second) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    on_the_wall = local("Europe/Berlin", 2026, 10, 25, 2, 15).replace(fold=1)  # the same instant
    assert BERLIN_LATE.until(None, on_the_wall) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    night = datetime(2026, 10, 24, 21, 0, tzinfo=UTC)  # 23:00 CEST: until the first 02:30
    assert BERLIN_LATE.until(None, night) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_decide_waits_inside_the_repeated_hour() -> None:
    policy = parse_policy(
        {
            "quiet_hours": {"start": "22:00", "end": "02:30", "timezone": "Europe/Berlin"},
            "rules": [{"codes": "*", "action": "retry", "delays": [0]}],
        }
    )
    second = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET
    due = failure(30003, failed_at=second, address=NEW_YORK)
    assert decide(policy, due, second, no_jitter) == Wait(
        900, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    )


@example(datetime(2026, 10, 25, 1, 15, tzinfo=UTC), BERLIN_LATE)  # 02:15 CET
@given(
    st.datetimes(  # Berlin's clocks went forward at 01:00 UTC on 2026-03-29
        min_value=datetime(2026, 3, 28, 18),
        max_value=datetime(2026, 3, 29, 6),
        timezones=st.just(UTC),
    )
    | st.datetimes(  # and back at 01:00 UTC on 2026-10-25
        min_value=datetime(2026, 10, 24, 18),
        max_value=datetime(2026, 10, 25, 6),
        timezones=st.just(UTC),
    ),
    st.sampled_from(
        [
            BERLIN_LATE,
            QuietHours(time(2, 15), time(2, 45), "Europe/Berlin", "UTC"),
            QuietHours(time(21), time(2, 0), "Europe/Berlin", "UTC"),
            QuietHours(time(2, 30), time(8), "Europe/Berlin", "UTC"),
            QuietHours(time(1), time(3), "Europe/Berlin", "UTC"),
        ]
    ),
)
def test_a_quiet_wait_always_ends_later_and_outside_the_window(
    moment: datetime, quiet: QuietHours
) -> None:
    """Around both of Berlin's clock changes, with edges inside the skipped or repeated hour:
    a send is held exactly when the wall clock is inside the window, until a later instant
    whose wall clock is outside it."""
    wall = moment.astimezone(ZoneInfo("Europe/Berlin")).time()
    if quiet.start < quiet.end:
        inside = quiet.start <= wall < quiet.end
    else:
        inside = wall >= quiet.start or wall < quiet.end
    end = quiet.until(None, moment)
    assert (end is not None) == inside
    if end is not None:
        assert end > moment
        assert quiet.until(None, end) is None


def test_an_unknown_number_uses_the_default_zone() -> None:
    tokyo = QuietHours(time(21), time(8), "recipient", "Asia/Tokyo")
    moment = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 22:00 in Tokyo, 09:00 in New York
    assert tokyo.until("+15550100000", moment) == datetime(2026, 6, 1, 23, 0, tzinfo=UTC)
    assert tokyo.until(None, moment) is not None
    assert tokyo.until("chat-identity", moment) is not None
    assert tokyo.until(NEW_YORK, moment) is None


def test_a_fixed_zone_applies_to_every_recipient() -> None:
    fixed = QuietHours(time(21), time(8), "Europe/London", "UTC")
    moment = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)  # 22:30 in London (BST)
    assert fixed.until(LOS_ANGELES, moment) == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)


def test_a_number_in_several_zones_waits_until_night_ends_in_all() -> None:
    """An Australian mobile prefix names Perth (UTC+8) to Sydney (UTC+10) and more."""
    assert len(zones_of_number("+61412345678")) > 1
    moment = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)  # 08:30 in Sydney, 06:30 in Perth
    end = NIGHT.until("+61412345678", moment)
    # 08:00 on the Cocos Islands (UTC+6:30), the westernmost zone the prefix names
    assert end == datetime(2026, 6, 2, 1, 30, tzinfo=UTC)


def test_a_number_spanning_a_continent_says_nothing() -> None:
    toll_free = "+18005550100"
    assert len(zones_of_number(toll_free)) > 10
    assert NIGHT.until(toll_free, datetime(2026, 6, 1, 12, 0, tzinfo=UTC)) is None  # noon UTC
    assert NIGHT.until(toll_free, datetime(2026, 6, 1, 22, 0, tzinfo=UTC)) is not None


def test_decide_holds_a_due_send_until_the_window_ends() -> None:
    night = local("America/New_York", 2026, 6, 1, 23, 0).astimezone(UTC)
    morning = local("America/New_York", 2026, 6, 2, 8, 0).astimezone(UTC)
    due = failure(63016, failed_at=night, address=NEW_YORK)
    assert decide(V2, due, night, no_jitter) == Wait(9 * 3600, morning)
    assert decide(V2, due, morning, no_jitter) == Send("template", V2.rules[0].template)
    # not looked at before the address is known: the last look before the send decides
    assert decide(V2, failure(63016, failed_at=night, known=False), night, no_jitter) == Send(
        "template", V2.rules[0].template
    )


def test_a_quiet_wait_is_spread_after_the_end_never_before() -> None:
    night = local("America/New_York", 2026, 6, 1, 23, 0).astimezone(UTC)
    morning = local("America/New_York", 2026, 6, 2, 8, 0).astimezone(UTC)
    due = failure(63016, failed_at=night, address=NEW_YORK)
    assert decide(V2, due, night, no_jitter) == Wait(9 * 3600, morning)
    for factor in (0.9, 1.1):  # either way, up to a tenth of the wait later
        latest = decide(V2, due, night, lambda _, f=factor: f)  # type: ignore[misc]
        assert latest == Wait(int(9 * 3600 * 1.1), morning + timedelta(seconds=9 * 360))
    halfway = decide(V2, due, night, lambda _: 1.05)
    assert halfway == Wait(int(9 * 3600 * 1.05), morning + timedelta(seconds=9 * 180))


def test_a_quiet_wait_past_max_age_gives_up() -> None:
    night = local("America/New_York", 2026, 6, 1, 23, 0).astimezone(UTC)
    short = parse_policy(v2({"max_age_seconds": 3600}))
    due = failure(63016, failed_at=night, address=NEW_YORK)
    assert decide(short, due, night, no_jitter) == GiveUp("max_age")


def test_addresses() -> None:
    assert e164("whatsapp:+15550100000") == "+15550100000"
    assert e164("+15550100000") == "+15550100000"
    assert e164("messenger:1234") is None
    assert e164(None) is None
    assert is_whatsapp("whatsapp:+15550100000")
    assert not is_whatsapp("+15550100000")
    assert zones_of_number("not a number") == ()
