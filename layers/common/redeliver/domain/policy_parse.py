"""Reading a RetryPolicy document: JSON text (the `RetryPolicy` template parameter, DESIGN.md
format, v2 a superset of v1) into a `RetryPolicy` (redeliver.domain.policy), every field checked.

Pure domain. `parse_policy` never falls back: an invalid document raises `PolicyError` naming the
field (`rules[2].delays[0]: ...`), so a bad deploy fails its first invocation loudly. Empty text
or None is the built-in `DEFAULT_POLICY_DOCUMENT`. An unknown field is an error; each action takes
only its own fields (`_RULE_FIELDS`); a Content SID, an E.164 sender, a time of day and an IANA
zone are checked by their form.

Bounds, each checked with the field named:
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
import re
from collections.abc import Mapping
from datetime import time
from typing import Any, cast

from redeliver.domain.policy import (
    ANY_CODE,
    DEFAULT_POLICY_DOCUMENT,
    DEFAULT_SUPPRESS_DAYS,
    Action,
    RetryPolicy,
    Rule,
    SendAction,
    Template,
)
from redeliver.domain.quiet_hours import RECIPIENT, QuietHours, UnknownZone, zone
from redeliver.domain.receipts import MAX_INTERVAL

ACTIONS: tuple[Action, ...] = ("retry", "give_up", "template", "fallback_sms", "suppress")
SENDING: tuple[SendAction, ...] = ("retry", "template", "fallback_sms")
GROUP_MODES = ("skip", "allow")
MAX_SUPPRESS_DAYS = 3650
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class PolicyError(ValueError):
    """The policy document is invalid; the message names the field."""


def parse_policy(
    document: str | Mapping[str, Any] | None, *, retention_days: int | None = None
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
        "quiet_hours",
        "suppress_days",
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
    return RetryPolicy(
        max_attempts=_positive(document.get("max_attempts", 3), "max_attempts"),
        max_age_seconds=max_age,
        group_conversations=group,
        rules=tuple(_rule(rule, f"rules[{n}]", max_age) for n, rule in enumerate(rules)),
        quiet_hours=_quiet_hours(document.get("quiet_hours")),
        suppress_days=_suppress_days(document.get("suppress_days", DEFAULT_SUPPRESS_DAYS)),
    )


def _positive(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return value


def _at_most(value: int, maximum: int, name: str, why: str) -> None:
    if value > maximum:
        raise PolicyError(f"{name}: must be at most {maximum} ({why}), got {value}")


_RULE_FIELDS: Mapping[str, frozenset[str]] = {
    "retry": frozenset({"delays"}),
    "give_up": frozenset(),
    "suppress": frozenset(),
    "template": frozenset({"delays", "content_sid", "content_variables"}),
    "fallback_sms": frozenset({"delays", "from"}),
}


def _rule(rule: Any, name: str, max_age: int) -> Rule:
    if not isinstance(rule, Mapping):
        raise PolicyError(f"{name}: must be an object")
    own = set(rule) - {"codes", "action"}
    everything = set().union(*_RULE_FIELDS.values())
    unknown = own - everything
    if unknown:
        raise PolicyError(f"{name}: unknown field(s): {', '.join(sorted(unknown))}")
    parsed_codes = _codes(rule.get("codes"), name)
    action = rule.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{name}.action: must be one of {', '.join(ACTIONS)}, got {action!r}")
    action = cast("Action", action)
    misplaced = own - _RULE_FIELDS[action]
    if "delays" in misplaced:
        raise PolicyError(f"{name}.delays: only a retry, template or fallback_sms rule has delays")
    if misplaced:
        first = sorted(misplaced)[0]
        raise PolicyError(f"{name}.{first}: not a field of a {action} rule")
    if action not in SENDING:
        return Rule(parsed_codes, action)
    return _sending_rule(rule, name, parsed_codes, action, max_age)


def _codes(codes: Any, name: str) -> frozenset[int] | None:
    if codes == ANY_CODE:
        return None
    if isinstance(codes, list) and codes:
        return frozenset(_positive(c, f"{name}.codes[{i}]") for i, c in enumerate(codes))
    raise PolicyError(f'{name}.codes: must be "*" or a non-empty list of error codes')


def _sending_rule(
    rule: Mapping[str, Any], name: str, codes: frozenset[int] | None, action: Action, max_age: int
) -> Rule:
    delays = rule.get("delays", [0] if action != "retry" else None)
    if not isinstance(delays, list) or not delays:
        raise PolicyError(f"{name}.delays: a {action} rule needs a non-empty list of seconds")
    parsed = tuple(_positive(d, f"{name}.delays[{i}]", 0) for i, d in enumerate(delays))
    for i, delay in enumerate(parsed):
        _at_most(delay, max_age, f"{name}.delays[{i}]", "max_age_seconds: it would always give up")
    if action == "template":
        return Rule(codes, action, parsed, template=_template(rule, name))
    if action == "fallback_sms":
        sender = rule.get("from")
        if not isinstance(sender, str) or not E164.fullmatch(sender):
            raise PolicyError(f"{name}.from: must be an E.164 phone number (+15550100000)")
        return Rule(codes, action, parsed, sms_from=sender)
    return Rule(codes, action, parsed)


def _template(rule: Mapping[str, Any], name: str) -> Template:
    content_sid = rule.get("content_sid")
    if not isinstance(content_sid, str) or not CONTENT_SID.fullmatch(content_sid):
        raise PolicyError(f"{name}.content_sid: must be a Content SID (HX and 32 hex digits)")
    variables = rule.get("content_variables", {})
    if not isinstance(variables, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise PolicyError(f"{name}.content_variables: must be an object of strings")
    return Template(content_sid, dict(variables))


def _quiet_hours(value: Any) -> QuietHours | None:
    if value is None:
        return None
    name = "quiet_hours"
    if not isinstance(value, Mapping):
        raise PolicyError(f"{name}: must be an object")
    unknown = set(value) - {"start", "end", "timezone", "default_timezone"}
    if unknown:
        raise PolicyError(f"{name}: unknown field(s): {', '.join(sorted(unknown))}")
    start = _clock(value.get("start"), f"{name}.start")
    end = _clock(value.get("end"), f"{name}.end")
    if start == end:
        raise PolicyError(f"{name}.end: must differ from start")
    timezone = value.get("timezone", RECIPIENT)
    default = value.get("default_timezone", "UTC")
    for key, zone_name in (("timezone", timezone), ("default_timezone", default)):
        if key == "timezone" and zone_name == RECIPIENT:
            continue
        try:
            if not isinstance(zone_name, str):
                raise UnknownZone(zone_name)
            zone(zone_name)
        except UnknownZone:
            either = '"recipient" or ' if key == "timezone" else ""
            raise PolicyError(
                f"{name}.{key}: must be {either}an IANA time zone name, got {zone_name!r}"
            ) from None
    return QuietHours(start, end, timezone, default)


def _clock(value: Any, name: str) -> time:
    match = CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PolicyError(f"{name}: must be a time of day HH:MM, got {value!r}")
    return time(int(match[1]), int(match[2]))


def _suppress_days(value: Any) -> int:
    days = _positive(value, "suppress_days")
    _at_most(days, MAX_SUPPRESS_DAYS, "suppress_days", "ten years")
    return days
