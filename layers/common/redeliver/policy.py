"""The retry policy: which failures get a new message, when, and how many times.

Pure domain: a validated `RetryPolicy` (the `RetryPolicy` template parameter, DESIGN.md format)
and `decide`, which turns one failure into `Send`, `Wait(seconds)` or `GiveUp(reason)`.

    {"max_attempts": 3, "max_age_seconds": 86400, "group_conversations": "skip",
     "rules": [{"codes": [30001, 30003], "action": "retry", "delays": [60, 900]},
               {"codes": [30005], "action": "give_up"},
               {"codes": "*", "action": "retry", "delays": [300]}]}

`delays[n]` is the wait before attempt n+1, counted from the failure; the last one repeats. The
first rule whose codes contain the error code decides (`"*"` matches any, and a failure without a
code). A message's own `attributes.redeliver` may narrow the policy (`enabled: false`, a lower
`max_attempts`), never widen it.

Bounds, each checked in `RetryPolicy.parse` with the field named:
- `max_age_seconds` ≤ the receipt retention (`ReceiptRetentionDays`, the table's TTL). An attempt's
  claim (`ATTEMPT#n`) is written after the original was sent and expires a retention later; past
  that, DynamoDB may delete it and only `max_age` keeps a redelivered job from claiming the same
  attempt again and sending twice. With `max_age` ≤ retention, no claim can vanish while a retry
  of its attempt is still allowed.
- `max_age_seconds` ≤ `MAX_INTERVAL` (365 days) whatever the retention: `decide` adds it to a
  receipt's date, and receipts accept dates up to `LATEST_DATE`, a year below `datetime.max`.
- `0 ≤ delay ≤ max_age_seconds`: a delay counts from the failure, which comes after the first
  send, so a longer one always ends past `max_age` and the rule could never retry. Every wait is
  also a chain of 15-minute SQS hops (one message each), so the bound is a cost bound too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from redeliver.receipts import MAX_INTERVAL

ANY_CODE = "*"
ACTIONS = ("retry", "give_up")
GROUP_MODES = ("skip", "allow")

DEFAULT_POLICY_DOCUMENT: Mapping[str, Any] = {
    "max_attempts": 3,
    "max_age_seconds": 86400,
    "group_conversations": "skip",
    "rules": [
        {"codes": [30001, 30003, 30008], "action": "retry", "delays": [60, 900, 3600]},
        {"codes": [30002, 30004, 30005, 30007, 30034, 21610, 63003, 63024], "action": "give_up"},
        {"codes": ANY_CODE, "action": "retry", "delays": [300]},
    ],
}


class PolicyError(ValueError):
    """The policy document is invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class Rule:
    codes: frozenset[int] | None  # None: "*"
    action: Literal["retry", "give_up"]
    delays: tuple[int, ...] = ()

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

    @classmethod
    def parse(
        cls, document: str | Mapping[str, Any] | None, *, retention_days: int | None = None
    ) -> RetryPolicy:
        """Validate a policy document (JSON text or parsed); empty or None means the default.

        `retention_days`: the deployment's receipt retention (RECEIPT_TTL_DAYS), which bounds
        `max_age_seconds`; None checks only the absolute bound (tools, tests).
        """
        if document is None or (isinstance(document, str) and not document.strip()):
            document = DEFAULT_POLICY_DOCUMENT
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except json.JSONDecodeError as error:
                raise PolicyError(f"RetryPolicy is not JSON: {error}") from None
        if not isinstance(document, Mapping):
            raise PolicyError("RetryPolicy must be a JSON object")
        unknown = set(document) - {
            "max_attempts",
            "max_age_seconds",
            "group_conversations",
            "rules",
        }
        if unknown:
            raise PolicyError(f"RetryPolicy has unknown field(s): {', '.join(sorted(unknown))}")
        group = document.get("group_conversations", "skip")
        if group not in GROUP_MODES:
            raise PolicyError(f"group_conversations: must be one of {', '.join(GROUP_MODES)}")
        rules = document.get("rules")
        if not isinstance(rules, list) or not rules:
            raise PolicyError("rules: must be a non-empty list")
        max_age = _positive(document.get("max_age_seconds", 86400), "max_age_seconds")
        _at_most(max_age, int(MAX_INTERVAL.total_seconds()), "max_age_seconds", "a year")
        if retention_days is not None:
            _at_most(
                max_age,
                retention_days * 86_400,
                "max_age_seconds",
                f"the receipt retention, ReceiptRetentionDays={retention_days}: an older claim "
                "may be deleted and claimed again",
            )
        return cls(
            max_attempts=_positive(document.get("max_attempts", 3), "max_attempts"),
            max_age_seconds=max_age,
            group_conversations=group,
            rules=tuple(_rule(rule, f"rules[{n}]", max_age) for n, rule in enumerate(rules)),
        )

    def rule_for(self, code: int | None) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(code)), None)


def _positive(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return value


def _at_most(value: int, maximum: int, name: str, why: str) -> None:
    if value > maximum:
        raise PolicyError(f"{name}: must be at most {maximum} ({why}), got {value}")


def _rule(rule: Any, name: str, max_age: int) -> Rule:
    if not isinstance(rule, Mapping):
        raise PolicyError(f"{name}: must be an object")
    unknown = set(rule) - {"codes", "action", "delays"}
    if unknown:
        raise PolicyError(f"{name}: unknown field(s): {', '.join(sorted(unknown))}")
    codes = rule.get("codes")
    if codes == ANY_CODE:
        parsed_codes = None
    elif isinstance(codes, list) and codes:
        parsed_codes = frozenset(_positive(c, f"{name}.codes[{i}]") for i, c in enumerate(codes))
    else:
        raise PolicyError(f'{name}.codes: must be "*" or a non-empty list of error codes')
    action = rule.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{name}.action: must be one of {', '.join(ACTIONS)}, got {action!r}")
    delays = rule.get("delays", [])
    if action == "retry":
        if not isinstance(delays, list) or not delays:
            raise PolicyError(f"{name}.delays: a retry rule needs a non-empty list of seconds")
        parsed = tuple(_positive(d, f"{name}.delays[{i}]", 0) for i, d in enumerate(delays))
        for i, delay in enumerate(parsed):
            _at_most(
                delay, max_age, f"{name}.delays[{i}]", "max_age_seconds: it would always give up"
            )
    elif delays:
        raise PolicyError(f"{name}.delays: only a retry rule has delays")
    else:
        parsed = ()
    return Rule(parsed_codes, action, parsed)


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a message's `attributes.redeliver` may say: it can only narrow the policy."""

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
            enabled=own.get("enabled", True) is not False,
            max_attempts=limit if valid_limit else None,
        )


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    pass


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


Decision = Send | Wait | GiveUp


@dataclass(frozen=True, slots=True)
class Failure:
    """What the policy needs to know about one failure."""

    error_code: int | None
    attempt: int  # the attempt this decision is about: 1 for a first failure
    failed_at: datetime  # the failure's DateUpdated
    first_sent_at: datetime  # when the original (root) message was sent
    recipients: int | None = None  # non-chat participants; None while unknown
    overrides: Overrides = Overrides()


def decide(policy: RetryPolicy, failure: Failure, now: datetime) -> Decision:  # noqa: PLR0911
    """Send, wait or give up. With recipients unknown, Send means: look at the message next."""
    if not failure.overrides.enabled:
        return GiveUp("disabled_by_message")
    rule = policy.rule_for(failure.error_code)
    if rule is None:
        return GiveUp("no_matching_rule")
    if rule.action == "give_up":
        return GiveUp("permanent_error")
    limit = policy.max_attempts
    if failure.overrides.max_attempts is not None:
        limit = min(limit, failure.overrides.max_attempts)
    if failure.attempt > limit:
        return GiveUp("max_attempts")
    if (failure.recipients or 0) > 1 and policy.group_conversations == "skip":
        return GiveUp("group_conversation")
    deadline = failure.first_sent_at + timedelta(seconds=policy.max_age_seconds)
    due = failure.failed_at + timedelta(seconds=rule.delay_before(failure.attempt))
    if due > deadline or now > deadline:
        return GiveUp("max_age")
    if due > now:
        return Wait(math.ceil((due - now).total_seconds()), due)
    return Send()


def rules_summary(policy: RetryPolicy) -> Sequence[str]:
    """One line per rule, for logs at cold start."""
    return [
        f"{'*' if r.codes is None else sorted(r.codes)} -> {r.action} {list(r.delays)}"
        for r in policy.rules
    ]
