"""The commands' argument types: each value checked once, here, while argparse reads the line.

One rule for exit codes (README: Operator commands): a command line that is wrong whatever the
stack holds (a malformed SID or number, a window of -1 hours, two arguments that exclude each
other) is a usage error, exit code 2, with the command's usage, as argparse answers an unknown
option; a well-formed command that cannot do what it was asked (no such stack, message or queue;
AWS or Twilio refusing) exits 1. A value is checked here, before any AWS call, so that a usage
error is one whatever the stack; what only the stack can tell is said with exit code 1.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime

from redeliver.domain.quiet_hours import e164

_SID_NAMES = {
    "IM": "message SID",
    "IS": "Conversation Service SID",
    "CH": "conversation SID",
    "AC": "account SID",
    "MB": "participant SID",
}
_SID = {prefix: re.compile(rf"^{prefix}[0-9a-fA-F]{{32}}$") for prefix in _SID_NAMES}


def sid(prefix: str) -> Callable[[str], str]:
    """The argparse type of a Twilio SID: `prefix` followed by 32 hex digits."""

    def check(text: str) -> str:
        if not _SID[prefix].match(text):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {_SID_NAMES[prefix]} ({prefix} followed by 32 hex digits)"
            )
        return text

    return check


message_sid = sid("IM")


def phone_number(text: str) -> str:
    """An E.164 phone number, as the worker hashes and zones it: `+` and up to 15 digits (no
    `whatsapp:` prefix, no spaces). `suppressions` and `policy check --to` both take it."""
    number = e164(text)
    if number is None or number != text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an E.164 number (+ and up to 15 digits, e.g. +12125550100)"
        )
    return number


def positive_float(text: str) -> float:
    """A number above zero (a window in hours, a wait in seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"{text} is not above zero")
    return value


def positive_int(text: str) -> int:
    """A whole number above zero (a count, a number of days)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above zero")
    return value


def moment(text: str) -> datetime:
    """An ISO 8601 time with its offset (`2026-06-02T15:00:00Z`, `...+02:00`)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset (Z, +01:00, ...)")
    return value
