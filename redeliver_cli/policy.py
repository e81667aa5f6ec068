"""`redeliver policy check FILE`: validate a RetryPolicy document before a deploy, naming the
invalid field, and show what it does with sample failures. Needs no stack: it runs the worker's own
parser and decision on the document. `max_age_seconds` is bounded by the template's default
ReceiptRetentionDays, or `--retention-days`. Each rule an earlier rule shadows gets a warning:
valid, but never what was meant.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from redeliver.domain.policy import (
    JITTER,
    Failure,
    GiveUp,
    Jitter,
    RetryPolicy,
    Send,
    Shadowed,
    Suppress,
    Wait,
    decide,
    no_jitter,
)
from redeliver.domain.policy_parse import PolicyError, parse_policy
from redeliver_cli.arguments import moment, phone_number, positive_int
from redeliver_cli.stack import DEFAULT_RETENTION_DAYS, CommandError, iso


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "policy",
        help="validate a RetryPolicy document",
        description="Validate a RetryPolicy document before a deploy (the field is named when "
        "it is invalid) and show what it would do with sample failures. Needs no stack.",
    )
    cmd.add_argument("policy_action", choices=["check"])
    cmd.add_argument("file", metavar="FILE", help="the JSON document ('-': standard input)")
    cmd.add_argument(
        "--to",
        type=phone_number,
        default="+12125550100",
        help="the sample recipient, an E.164 number (+12125550100, New York)",
    )
    cmd.add_argument(
        "--at",
        type=moment,
        default=None,
        help="the sample failure's time, ISO 8601 with an offset (default: now)",
    )
    cmd.add_argument(
        "--retention-days",
        type=positive_int,
        default=DEFAULT_RETENTION_DAYS,
        help="the stack's ReceiptRetentionDays, which bounds max_age_seconds "
        f"(default: the template's, {DEFAULT_RETENTION_DAYS})",
    )
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    at = args.at or datetime.now(UTC)
    return policy_check(args.file, args.to, at, args.retention_days)


# -- policy check ------------------------------------------------------------------------------

# Sample failures: the codes of the default policy's table (README), and one no rule names.
SAMPLE_CODES = (30001, 30003, 30005, 30006, 30007, 30008, 30034, 30450, 21610, 63016, 63018, 63024)
UNMAPPED_SAMPLE = 99999


def policy_check(
    path: str, to: str, at: datetime, retention_days: int = DEFAULT_RETENTION_DAYS
) -> list[str]:
    """Validate the document at `path` (`-` for stdin) and say what it does with each sample
    failure: attempt 1, failed at `at`, to `to`, as the worker's last look before a send.

    `max_age_seconds` is held to `retention_days` as the retry function holds it to its stack's
    ReceiptRetentionDays: by default the template's, so that a document the default stack would
    refuse on every invocation is refused here, before the deploy."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    try:
        policy = parse_policy(text, retention_days=retention_days)
    except PolicyError as error:
        raise CommandError(f"invalid RetryPolicy: {error}") from None
    lines = [
        f"{path}: valid. max_attempts={policy.max_attempts} "
        f"max_age_seconds={policy.max_age_seconds} suppress_days={policy.suppress_days} "
        f"quiet_hours={_quiet(policy)}",
        f"max_age_seconds checked against ReceiptRetentionDays={retention_days}"
        + (
            " (the template's default; --retention-days N for a stack that keeps receipts longer)"
            if retention_days == DEFAULT_RETENTION_DAYS
            else ""
        ),
        f"sample failures, attempt 1, failed at {iso(at)}, to {to} (a wait as the rule reads, "
        f"then as the worker's jitter stretches it: x{1 - JITTER:.2f} to x{1 + JITTER:.2f}, "
        "drawn per failure):",
    ]
    lines += [_warning(policy, shadow) for shadow in policy.shadowed()]
    for code in (*SAMPLE_CODES, UNMAPPED_SAMPLE):
        failure = Failure(code, 1, at, at, 1, address=to, address_known=True)
        unmapped = '  (only "*" matched: UnmappedErrorCode)' if policy.unmapped(code) else ""
        lines.append(f"  {code:>5}  {_what(policy, failure, at)}{unmapped}")
    return lines


def _warning(policy: RetryPolicy, shadow: Shadowed) -> str:
    rule = f"rules[{shadow.rule}] ({policy.rules[shadow.rule].action})"
    by = policy.rules[shadow.by]
    if shadow.codes is None:
        return (
            f'warning: {rule} is never used: rules[{shadow.by}] ({by.action}, "*") matches '
            "every code first"
        )
    codes = ", ".join(str(code) for code in sorted(shadow.codes))
    earlier = f"rules[{shadow.by}] ({by.action})"
    if shadow.whole:
        verb = "is" if len(shadow.codes) == 1 else "are"
        return f"warning: {rule} is never used: {codes} {verb} decided first by {earlier}"
    return f"warning: {rule} never sees {codes}: it is decided first by {earlier}"


def _quiet(policy: RetryPolicy) -> str:
    quiet = policy.quiet_hours
    if quiet is None:
        return "none"
    zone = "the recipient's zone" if quiet.timezone == "recipient" else quiet.timezone
    return f"{quiet.start:%H:%M}-{quiet.end:%H:%M} in {zone} (default {quiet.default_timezone})"


def _what(policy: RetryPolicy, failure: Failure, at: datetime) -> str:
    """What the worker decides for `failure`; a wait also as its jitter stretches it: the
    range over the factors drawn (the ends and none: a quiet-hours wait is spread by how far
    the factor is from 1, a delay by the factor itself)."""
    decision = decide(policy, failure, at, no_jitter)
    if not isinstance(decision, Wait):
        return _decision(decision)
    said = _decision(decision)
    ends = [decide(policy, failure, at, _factor(f)) for f in (1 - JITTER, 1 + JITTER)]
    waits = sorted([decision.seconds, *(end.seconds for end in ends if isinstance(end, Wait))])
    if len(waits) <= len(ends) or waits[0] == waits[-1]:
        return said  # jitter moves nothing (and never carries a wait past max_age)
    return f"{said}; with jitter {waits[0]}-{waits[-1]} s"


def _factor(factor: float) -> Jitter:
    """A jitter that always draws `factor`: the ends of the worker's (stable_jitter)."""
    return lambda _: factor


def _decision(decision: Send | Wait | GiveUp | Suppress) -> str:
    if isinstance(decision, GiveUp):
        return f"give up ({decision.reason})"
    if isinstance(decision, Suppress):
        return f"suppress the recipient for {decision.days} days, no resend"
    if isinstance(decision, Wait):
        return f"wait {decision.seconds} s, until {iso(decision.due_at)}, then look again"
    if decision.action == "template" and decision.template is not None:
        return f"send Content template {decision.template.content_sid} now"
    if decision.action == "fallback_sms":
        return f"send as SMS from {decision.sms_from} now (a WhatsApp recipient)"
    return "send the same content again now"
