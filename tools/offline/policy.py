"""The retry policy the offline stack deploys: the default's rules with every delay cut 300-fold,
behind two rules only the offline stack has (the report's notes say so: `policy_notes`)."""

from __future__ import annotations

from typing import Any

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT

# The scenario's SMS sender: every SMS conversation's proxy number (send_messages), and the
# offline `fallback_sms` rule's `from`, so that a fallback lands in the recipient's SMS
# conversation when it has one.
SMS_FROM = "+15550009999"

# Rules only the offline stack has, ahead of the default's: the default gives 63016 and 63024 up
# (a template needs an approved Content SID, a fallback a sender number, neither of which the
# default can know), so without them a run never shows `template` or `fallback_sms`. The content
# SID is a fake one, known to the simulator only. Said in the report's notes.
OFFLINE_ONLY_RULES: list[dict[str, Any]] = [
    {
        "codes": [63016],
        "action": "template",
        "content_sid": "HX" + "0ff1" * 8,
        "content_variables": {"1": "{body}"},
        "delays": [0],
    },
    {"codes": [63024, 63032], "action": "fallback_sms", "from": SMS_FROM, "delays": [0]},
]

# The default policy's rules with each delay cut 300-fold (a minute becomes a second), so a
# scenario ends in seconds; derived, so the two cannot drift apart.
OFFLINE_POLICY = {
    **DEFAULT_POLICY_DOCUMENT,
    "max_age_seconds": 3600,
    "rules": [
        *OFFLINE_ONLY_RULES,
        *(
            {**rule, "delays": [max(1, delay // 300) for delay in rule["delays"]]}
            if "delays" in rule
            else dict(rule)
            for rule in DEFAULT_POLICY_DOCUMENT["rules"]
        ),
    ],
}


def policy_notes() -> list[str]:
    """Where the offline policy departs from the default's, beyond its compressed delays."""
    template, fallback = OFFLINE_ONLY_RULES
    return [
        f"offline-only rules, ahead of the default's: {template['codes']} template "
        f"{template['content_sid']} (a fake Content SID, known to the simulator only), "
        f"{fallback['codes']} fallback_sms from {fallback['from']}; the default policy gives "
        "these codes up",
        "quiet hours not exercised: a window is wall-clock time in the recipient's zone and "
        "cannot be compressed (a run would wait until the window's end, hours away)",
    ]
