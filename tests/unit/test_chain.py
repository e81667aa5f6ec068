"""Chains and the new message built for an attempt (DESIGN invariant 6), without Twilio."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from redeliver.domain.chain import (
    CannotResend,
    Chain,
    MessageSnapshot,
    NewMessage,
    Origin,
    marker_chain,
    marker_of,
    new_message,
    parse_attributes,
)
from tools.samples import sid

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
ROOT = sid("IM", "root")


def snapshot(**change: Any) -> MessageSnapshot:
    values: dict[str, Any] = {
        "sid": ROOT,
        "conversation_sid": sid("CH", 1),
        "author": "shop",
        "body": "Code 123",
        "attributes": {"order": 42},
        "media_sids": [],
        "content_sid": None,
        "date_created": T0,
    }
    return MessageSnapshot(**{**values, **change})


def test_a_root_starts_at_attempt_one_and_a_retry_continues_its_chain() -> None:
    assert Chain.of(ROOT, None, T0) == Chain(ROOT, 1, T0)
    origin = Origin(root=ROOT, retry_of=ROOT, attempt=1, first_sent_at=T0)
    assert Chain.of(sid("IM", "retry"), origin, datetime.now(UTC)) == Chain(ROOT, 2, T0)


def test_new_message_keeps_content_and_attributes_and_adds_the_marker() -> None:
    outgoing = new_message(snapshot(), Chain(ROOT, 1, T0))
    assert outgoing == NewMessage(
        author="shop",
        body="Code 123",
        attributes={"order": 42, "redeliver": {"retry_of": ROOT, "root": ROOT, "attempt": 1}},
    )


def test_the_marker_merges_with_the_apps_own_redeliver_settings() -> None:
    retry_sid = sid("IM", "retry")
    original = snapshot(
        sid=retry_sid,
        attributes={"redeliver": {"max_attempts": 2, "retry_of": ROOT, "root": ROOT, "attempt": 1}},
    )
    outgoing = new_message(original, Chain(ROOT, 2, T0))
    assert isinstance(outgoing, NewMessage)
    assert outgoing.attributes["redeliver"] == {
        "max_attempts": 2,
        "retry_of": retry_sid,
        "root": ROOT,
        "attempt": 2,
    }
    assert marker_chain(original) == (ROOT, 1)
    assert marker_chain(snapshot()) is None


@pytest.mark.parametrize(
    "marker",
    [
        {"root": ROOT, "attempt": 0},  # attempts start at 1
        {"root": ROOT, "attempt": -10},
        {"root": ROOT, "attempt": True},
        {"root": ROOT, "attempt": "1"},
        {"root": ROOT, "attempt": 1.0},
        {"root": "", "attempt": 1},
        {"root": 42, "attempt": 1},
        {"root": "CH" + ROOT[2:], "attempt": 1},  # not a message SID
        "IMroot",
    ],
)
def test_a_malformed_marker_names_no_chain(marker: object) -> None:
    assert marker_of({"redeliver": marker}) is None


def test_a_marker_names_root_attempt_and_retry_of() -> None:
    marker = {"root": ROOT, "attempt": 2, "retry_of": "IMx"}
    assert marker_of({"redeliver": marker}) == (ROOT, 2, "IMx")
    assert marker_of({"redeliver": {"root": ROOT, "attempt": 2}}) == (ROOT, 2, "")


def test_media_is_carried_over() -> None:
    outgoing = new_message(snapshot(body=None, media_sids=["ME1"]), Chain(ROOT, 1, T0))
    assert isinstance(outgoing, NewMessage)
    assert outgoing.media_sid == "ME1"


def test_more_media_than_create_takes_is_not_guessed() -> None:
    assert new_message(snapshot(media_sids=["ME1", "ME2"]), Chain(ROOT, 1, T0)) == CannotResend(
        "multiple_media"
    )


def test_a_template_needs_its_variables() -> None:
    template = snapshot(content_sid="HX" + "0" * 32, body="rendered text")
    assert new_message(template, Chain(ROOT, 1, T0)) == CannotResend("template_variables_unknown")
    known = snapshot(
        content_sid="HX" + "0" * 32,
        body="rendered text",
        attributes={"redeliver": {"content_variables": {"1": "Ada"}}},
    )
    outgoing = new_message(known, Chain(ROOT, 1, T0))
    assert isinstance(outgoing, NewMessage)
    assert outgoing.body is None  # the template decides the content
    assert outgoing.content_sid == "HX" + "0" * 32
    assert outgoing.content_variables == {"1": "Ada"}


def test_an_empty_message_is_not_resent() -> None:
    assert new_message(snapshot(body=""), Chain(ROOT, 1, T0)) == CannotResend("nothing_to_send")


def test_attributes_that_are_not_an_object_read_as_empty() -> None:
    assert parse_attributes(None) == {}
    assert parse_attributes("not json") == {}
    assert parse_attributes("[1]") == {}
    assert parse_attributes('{"a": 1}') == {"a": 1}
