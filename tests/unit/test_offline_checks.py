"""The offline and chaos report's privacy and group checks, on data made here (the e2e tests
run them over a real run)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tools.offline.checks import no_group_sends, no_phone_numbers_logged, one_message_per_attempt


@pytest.mark.parametrize(
    "line",
    [
        "GET /v1/Services/IS1/ParticipantConversations?Address=%2B15551234567 HTTP/1.1",
        '{"message": "to +15551234567."}',
        '{"address": "whatsapp:+447700900123"}',
        "address=%2b15551234567",
    ],
)
def test_a_logged_phone_number_breaks_the_check(tmp_path: Path, line: str) -> None:
    log = tmp_path / "lambda.log"
    log.write_text(f'{{"level": "INFO"}}\n{line}\n')
    check = no_phone_numbers_logged(log)
    assert not check.held
    assert check.violations == [f"logged: {line}"]


def test_sids_timestamps_and_codes_are_not_phone_numbers(tmp_path: Path) -> None:
    log = tmp_path / "lambda.log"
    log.write_text(
        '{"message_sid": "IM0123456789abcdef0123456789abcdef", "Timestamp": 1796315600765, '
        '"error_code": 63016, "address_hash": "ab12", "x": "%2B1", "y": "+1234"}\n'
    )
    check = no_phone_numbers_logged(log)
    assert check.held, check.violations
    assert check.evidence == "1 lines read"


def test_a_new_message_to_more_than_one_recipient_breaks_the_group_check() -> None:
    stack = SimpleNamespace(
        sim=SimpleNamespace(created=[{"sid": "IMa"}, {"sid": "IMb"}]),
        recipients_at_create={"IMa": 1, "IMb": 3, "IMapp": 5},  # IMapp: the app's, not ours
    )
    check = no_group_sends(cast(Any, stack))
    assert check.violations == ["IMb went to 3 recipients"]
    assert check.evidence == "2 new message(s)"


def _attempt(root: str, state: str, new: str = "", retry_of: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": f"MSG#{root}"}, "sk": {"S": "ATTEMPT#1"}}
    item["state"] = {"S": state}
    if new:
        item["new_message_sid"] = {"S": new}
    if retry_of:
        item["retry_of"] = {"S": retry_of}
    return item


def _created(sid: str, root: str) -> dict[str, Any]:
    return {"sid": sid, "attributes": json.dumps({"redeliver": {"root": root, "attempt": 1}})}


def test_a_message_out_for_a_claimed_attempt_is_a_violation_unless_its_job_is_in_the_dlq() -> None:
    """Creates that kept failing ambiguously used up the job's receives: one message went out,
    the claim is unresolved and the job waits in the (alarmed) DLQ for a redrive, whose search
    records it. That is no double and no silence; a claimed attempt with no job there is."""
    created = [_created("IMnew", "IMroot")]
    items = [_attempt("IMroot", "claimed", retry_of="IMroot")]
    dead_job = json.dumps({"event": {"message_sid": "IMroot"}})
    other_job = json.dumps({"event": {"message_sid": "IMother"}})
    assert one_message_per_attempt(created, items).violations == [
        "IMnew went out for IMroot attempt 1, recorded as claimed"
    ]
    assert not one_message_per_attempt(created, items, [other_job, "not json"]).held
    waiting = one_message_per_attempt(created, items, [dead_job])
    assert waiting.held
    assert "1 still claimed with its job in the DLQ" in waiting.evidence
    given_up = [_attempt("IMroot", "gave_up")]
    assert not one_message_per_attempt(created, given_up, [dead_job]).held
