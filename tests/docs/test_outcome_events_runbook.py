"""The outcome events runbook against what a Pipes DLQ message holds.

For a DynamoDB stream source, a Pipes (as a Lambda event source mapping's) dead-letter message
holds the failed batch's metadata only: the stream ARN, the shard id, the first and last sequence
numbers and arrival times, the batch size; never the record (docs/operations.md says so too:
"its shard and sequence numbers, not the event"). The record itself stays in the stream until it
is 24 hours old. So the only ways from a DLQ message to the `EVENT#<event_id>` items it stands
for are to read those records back from the stream (GetShardIterator AT_SEQUENCE_NUMBER, then
GetRecords), before they are trimmed, or to take the table's event items of the batch's time
window.
"""

from __future__ import annotations

from tests.docs.markdown import ROOT

RUNBOOK = "### Runbook: Outcome events not published (`OutcomeEventsDLQNotEmptyAlarm`)"


def runbook() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    return text.split(f"\n{RUNBOOK}\n", 1)[1].split("\n### ", 1)[0]


def test_the_runbook_gets_from_a_dlq_message_to_the_event_items_it_stands_for() -> None:
    """Step 2 says "Publish what the DLQ names: read each item (... EVENT#<event_id> ...)", but the
    DLQ names no event_id, only shard and sequence numbers: the operator paged by the alarm has
    no way, as written, to find which decisions were never published; the items stay (until
    their TTL) and are never put on the bus (LOST). The runbook must read the records back from
    the stream (AT_SEQUENCE_NUMBER, while they are under 24 hours old) or take the event items of
    the batch's time window (approximateArrivalOfFirstRecord..LastRecord)."""
    text = runbook()
    reads_the_stream = "AT_SEQUENCE_NUMBER" in text and "get-records" in text
    takes_the_window = "approximateArrivalOfFirstRecord" in text
    assert reads_the_stream or takes_the_window, (
        "the runbook asks for EVENT#<event_id> items, which no DLQ message names"
    )


def test_the_runbook_restarts_a_pipe_that_pipes_disabled() -> None:
    """Step 1 ends "Fix it; new decisions flow again". For the causes it names (the bus deleted or
    renamed, its policy or the role no longer allowing PutEvents: continuous 4xx), Pipes "can
    automatically disable" the pipe "with an explanatory message in the StateReason"
    (EventBridge User Guide, eb-pipes-error-troubleshooting). A disabled pipe stays disabled
    once the bus is fixed: nothing flows again, the emptied DLQ stays empty, and every later
    decision's record is trimmed from the stream after 24 hours (LOST). The runbook must look at
    the pipe's state and start it (`aws pipes describe-pipe` / `aws pipes start-pipe`)."""
    text = runbook()
    assert "StateReason" in text or "CurrentState" in text, "the runbook never checks the pipe"
    assert "start-pipe" in text, "the runbook never starts a pipe Pipes disabled"
