"""Adversarial review of outcome events (issue 19): the chaos invariant `one outcome event per
recorded decision` cannot see a lost `Retry Recovered`."""

from __future__ import annotations

from redeliver.domain.outcome_events import DetailType, event_id
from tools.offline.checks import one_event_per_decision
from tools.pipes import Published

ROOT = "IM" + "a" * 32
RETRY = "IM" + "b" * 32


def test_a_recovered_retry_without_its_event_breaks_the_check() -> None:
    """The table says attempt 1 was sent as RETRY and RETRY's receipt is `delivered` (so
    `redeliver stats` counts it recovered), yet the bus got only `Retry Sent`. DESIGN: `Retry
    Recovered` when a retry's receipt says delivered or read. The check asks for an event per
    sent or given-up attempt and per suppression, and of a `Retry Recovered` only that it names a
    sent attempt: a recovery that was never published (tests/integration/
    test_outcome_events_recovered.py) passes every chaos run."""
    items = [
        {
            "pk": {"S": f"MSG#{ROOT}"},
            "sk": {"S": "ATTEMPT#001"},
            "state": {"S": "sent"},
            "new_message_sid": {"S": RETRY},
            "followed_up_at": {"N": "1795773670"},
        },
        {"pk": {"S": f"MSG#{RETRY}"}, "sk": {"S": "ORIGIN"}, "root": {"S": ROOT}},
        {
            "pk": {"S": f"MSG#{RETRY}"},
            "sk": {"S": "RCPT#DY" + "c" * 32},
            "status": {"S": "delivered"},
        },
    ]
    sent_id = event_id(ROOT, 1, DetailType.RETRY_SENT)
    published = [
        Published(
            "redeliver",
            "Retry Sent",
            {"event_id": sent_id, "root": ROOT, "attempt": "1", "new_message_sid": RETRY},
        )
    ]
    check = one_event_per_decision(items, published)
    assert not check.held, check.evidence
