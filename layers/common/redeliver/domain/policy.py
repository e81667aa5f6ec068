"""The retry policy: which failures get a new message, when, how, and how many times.

Pure domain: a validated `RetryPolicy` (the `RetryPolicy` template parameter, DESIGN.md format,
v2: a superset of v1) and `decide`, which turns one failure into `Send(how)`, `Wait(seconds)`,
`Suppress(days)` or `GiveUp(reason)`. `parse_policy` (redeliver.domain.policy_parse) reads and
checks a document, and says why each bound holds.

    {"max_attempts": 3, "max_age_seconds": 86400, "group_conversations": "skip",
     "rules": [{"codes": [30001, 30003], "action": "retry", "delays": [60, 900]},
               {"codes": [30005], "action": "give_up"},
               {"codes": "*", "action": "retry", "delays": [300]}]}

`delays[n]` is the wait before attempt n+1, counted from the failure; the last one repeats. The
first rule whose codes contain the error code decides (`"*"` matches any, and a failure without a
code). A message's own `attributes.redeliver` may narrow the policy (`enabled: false`, a lower
`max_attempts`), never widen it: an `enabled` that is not clearly true turns retries off
(`Overrides`).

Policy v2 adds:
- actions `template` (`content_sid` HX..., `content_variables` rendered with `{body}`, the
  original's body), `fallback_sms` (`from`, an E.164 number) and `suppress` (no resend; the
  recipient is suppressed for `suppress_days`); `template` and `fallback_sms` take `delays` as
  `retry` does (default `[0]`), `give_up` and `suppress` none;
- `quiet_hours` (`start`, `end` as `HH:MM`, `timezone` "recipient" or an IANA zone,
  `default_timezone`): a send inside the window waits until its end (redeliver.domain.quiet_hours);
- jitter: every wait is stretched by a factor in [0.9, 1.1] (`Jitter`), drawn per failure from
  its chain and attempt (`stable_jitter`), so that asking again about the same failure (after a
  hop, after a fetch) gives the same answer while a burst of failures spreads out. Jitter never
  carries a wait past `max_age`, and never brings a quiet-hours wait before the window's end.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from redeliver.domain.quiet_hours import QuietHours

ANY_CODE = "*"
Action = Literal["retry", "give_up", "template", "fallback_sms", "suppress"]
SendAction = Literal["retry", "template", "fallback_sms"]
JITTER = 0.10  # every wait is stretched by a factor in [1 - JITTER, 1 + JITTER]
BODY = "{body}"  # in a template's variables: the original message's body

# Grounded in Twilio's error pages (README, "The default policy", says why for each code).
DEFAULT_POLICY_DOCUMENT: Mapping[str, Any] = {
    "max_attempts": 3,
    "max_age_seconds": 86400,
    "group_conversations": "skip",
    "suppress_days": 90,
    "rules": [
        {
            "codes": [30001, 30003, 30008, 30500, 63018],
            "action": "retry",
            "delays": [60, 900, 3600],
        },
        {"codes": [30450], "action": "retry", "delays": [1800]},
        {"codes": [21610, 30005, 30006], "action": "suppress"},
        {"codes": [30002, 30004, 30007, 30034, 63003, 63016, 63024], "action": "give_up"},
        {"codes": ANY_CODE, "action": "retry", "delays": [300]},
    ],
}
DEFAULT_SUPPRESS_DAYS = 90


@dataclass(frozen=True, slots=True)
class Template:
    """A Content template to send instead of the original's free-form content."""

    content_sid: str
    variables: Mapping[str, str] = field(default_factory=dict)

    def render(self, body: str | None, own: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Each value with `{body}` replaced by the original's body; the message's own
        `redeliver.content_variables` (`own`) win, key by key."""
        rendered = {key: value.replace(BODY, body or "") for key, value in self.variables.items()}
        for key, value in (own or {}).items():
            rendered[str(key)] = str(value)
        return rendered


@dataclass(frozen=True, slots=True)
class Rule:
    codes: frozenset[int] | None  # None: "*"
    action: Action
    delays: tuple[int, ...] = ()
    template: Template | None = None  # action "template"
    sms_from: str | None = None  # action "fallback_sms": the proxy (sender) number

    def matches(self, code: int | None) -> bool:
        return self.codes is None or (code is not None and code in self.codes)

    def delay_before(self, attempt: int) -> int:
        return self.delays[min(attempt, len(self.delays)) - 1]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    max_age_seconds: int
    group_conversations: Literal["skip", "allow"]
    rules: tuple[Rule, ...]
    quiet_hours: QuietHours | None = None
    suppress_days: int = DEFAULT_SUPPRESS_DAYS

    def rule_for(self, code: int | None) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(code)), None)

    def shadowed(self) -> list[Shadowed]:
        """Each rule an earlier one hides, wholly or for some of its codes: the first matching
        rule decides, so those codes never reach it. Valid, but most likely not what was meant
        (a `template` rule for 63016 after a `give_up` rule naming 63016)."""
        found: list[Shadowed] = []
        for n, rule in enumerate(self.rules):
            left = rule.codes
            for earlier, before in enumerate(self.rules[:n]):
                if before.codes is None:  # "*": nothing after it is ever used
                    found.append(Shadowed(n, earlier, None, whole=True))
                    break
                if left is not None and left & before.codes:
                    found.append(Shadowed(n, earlier, left & before.codes, not left - before.codes))
                    left = left - before.codes
                    if not left:
                        break
        return found

    def unmapped(self, code: int | None) -> bool:
        """A code that only a `"*"` rule matched: the policy says nothing about it on purpose
        (the `UnmappedErrorCode` metric asks for a rule)."""
        rule = self.rule_for(code)
        return code is not None and rule is not None and rule.codes is None


@dataclass(frozen=True, slots=True)
class Shadowed:
    """`rules[rule]` never sees `codes` (None: any code) because `rules[by]` comes first and
    decides them; `whole`: nothing is left for it."""

    rule: int
    by: int
    codes: frozenset[int] | None
    whole: bool


# `enabled` values that leave a message's retries on; any other value turns them off
ENABLED_WORDS = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a message's `attributes.redeliver` may say: it can only narrow the policy.

    `enabled` keeps retries on when it is absent, `true`, `1`, or a string `true`/`1`/`yes`/`on`
    (any case). Anything else turns them off: `false` and `0` of course, and also the string
    `"false"` (attributes are often built by string templating), `"no"`, `null`, or a value that
    says neither, since an override may only narrow and a message that tried to say something
    about its retries most likely meant to stop them. A `max_attempts` that is not an integer
    >= 0 is ignored: the policy's own limit applies.
    """

    enabled: bool = True
    max_attempts: int | None = None

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any]) -> Overrides:
        own = attributes.get("redeliver")
        if not isinstance(own, Mapping):
            return cls()
        limit = own.get("max_attempts")
        valid_limit = isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0
        return cls(
            enabled=_enabled(own.get("enabled", True)),
            max_attempts=limit if valid_limit else None,
        )


def _enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in ENABLED_WORDS


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send now, the way the rule says (`retry`: the same content again)."""

    action: SendAction = "retry"
    template: Template | None = None
    sms_from: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


@dataclass(frozen=True, slots=True)
class Suppress:
    """No resend; suppress the recipient for `days` (then give up as `suppressed`)."""

    days: int


Decision = Send | Wait | GiveUp | Suppress


@dataclass(frozen=True, slots=True)
class Failure:
    """What the policy needs to know about one failure."""

    error_code: int | None
    attempt: int  # the attempt this decision is about: 1 for a first failure
    failed_at: datetime  # the failure's DateUpdated
    first_sent_at: datetime  # when the original (root) message was sent
    recipients: int | None = None  # non-chat participants; None while unknown
    overrides: Overrides = Overrides()
    key: str = ""  # names the failure (root and attempt): the seed of its jitter
    # The recipient's messaging address (`+1555...`, `whatsapp:+1555...`), once looked at;
    # `address_known` False: not yet, and quiet hours are left for the last look before a send.
    address: str | None = None
    address_known: bool = False


Jitter = Callable[[Failure], float]  # a factor in [1 - JITTER, 1 + JITTER]


def stable_jitter(failure: Failure) -> float:
    """The same factor each time the same failure is asked about, spread across failures."""
    return random.Random(failure.key).uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - not secret


def no_jitter(_: Failure) -> float:
    return 1.0


def decide(  # noqa: PLR0911
    policy: RetryPolicy, failure: Failure, now: datetime, jitter: Jitter = stable_jitter
) -> Decision:
    """Send, wait, suppress or give up. With recipients unknown, Send means: look at the
    message next; with the address unknown, quiet hours are not looked at yet."""
    if not failure.overrides.enabled:
        return GiveUp("disabled_by_message")
    rule = policy.rule_for(failure.error_code)
    if rule is None:
        return GiveUp("no_matching_rule")
    if rule.action == "give_up":
        return GiveUp("permanent_error")
    if rule.action == "suppress":
        return Suppress(policy.suppress_days)
    limit = policy.max_attempts
    if failure.overrides.max_attempts is not None:
        limit = min(limit, failure.overrides.max_attempts)
    if failure.attempt > limit:
        return GiveUp("max_attempts")
    if (failure.recipients or 0) > 1 and policy.group_conversations == "skip":
        return GiveUp("group_conversation")
    deadline = failure.first_sent_at + timedelta(seconds=policy.max_age_seconds)
    delay = rule.delay_before(failure.attempt)
    if failure.failed_at + timedelta(seconds=delay) > deadline or now > deadline:
        return GiveUp("max_age")
    factor = min(max(jitter(failure), 1 - JITTER), 1 + JITTER)
    due = min(failure.failed_at + timedelta(seconds=delay * factor), deadline)
    if failure.address_known and policy.quiet_hours is not None:
        moment = max(due, now)
        quiet_end = policy.quiet_hours.until(failure.address, moment)
        if quiet_end is not None:  # spread over the first tenth of the wait after the end
            spread = (quiet_end - moment) * abs(factor - 1)
            if quiet_end > deadline:
                return GiveUp("max_age")
            due = min(quiet_end + spread, deadline)
    if due > now:
        return Wait(math.ceil((due - now).total_seconds()), due)
    return Send(rule.action, rule.template, rule.sms_from)


def rules_summary(policy: RetryPolicy) -> Sequence[str]:
    """One line per rule, for logs at cold start."""
    return [
        f"{'*' if r.codes is None else sorted(r.codes)} -> {r.action} {list(r.delays)}"
        for r in policy.rules
    ]
