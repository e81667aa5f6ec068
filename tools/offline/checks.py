"""DESIGN.md's invariants, each a `Check` over what a run left behind: exactly one new message per
attempt, every failure decided or visible in the DLQ, no 5xx for valid input, each resend as its
action says, no new message in a group conversation, no phone number in any function's log."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redeliver.domain.outcome_events import DetailType, event_id
from redeliver.domain.receipts import FAILURE_STATUSES
from tools.offline.policy import OFFLINE_ONLY_RULES, SMS_FROM
from tools.offline.runtime import describe_job
from tools.offline.stack import Offline
from tools.offline.state import Receipt, lost_statuses, twilio_truth
from tools.pipes import Published


@dataclass
class Check:
    """One invariant of DESIGN.md, as the run's data shows it."""

    name: str
    violations: list[str] = field(default_factory=list)
    evidence: str = ""  # what it was checked over

    @property
    def held(self) -> bool:
        return not self.violations


def check_invariants(
    offline: Offline,
    items: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    dead: list[str],
) -> list[Check]:
    links = chains(items, offline.sim.created)
    emitter = offline.emitter
    return [
        one_message_per_attempt(offline.sim.created, items, dead),
        failures_decided(
            items,
            by_key,
            links,
            dead,
            truth=twilio_truth(offline),
            reached=set(emitter.reached) if emitter else set(),
            lost=lost_statuses(emitter) if emitter else set(),
        ),
        no_server_errors(offline),
        actions_as_configured(offline),
        no_group_sends(offline),
        no_phone_numbers_logged(offline.runtime.log),
        *([one_event_per_decision(items, offline.pipe.published)] if offline.pipe else []),
    ]


def chains(
    items: list[dict[str, Any]], created: list[dict[str, Any]]
) -> dict[str, tuple[str, int]]:
    """Message key → (root, which attempt it is) for every retry: from its ORIGIN link, else from
    the marker Twilio holds in its attributes (a worker can die between create and record)."""
    known: dict[str, tuple[str, int]] = {}
    for message in created:
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            marker = json.loads(message.get("attributes") or "{}")["redeliver"]
            known[f"MSG#{message['sid']}"] = (str(marker["root"]), int(marker["attempt"]))
    for item in items:
        if item["sk"]["S"] == "ORIGIN":
            known[item["pk"]["S"]] = (item["root"]["S"], int(item["attempt"]["N"]))
    return known


def failure_decision(
    item: dict[str, Any],
    by_key: dict[tuple[str, str], dict[str, Any]],
    links: dict[str, tuple[str, int]],
) -> tuple[str, int, str | None]:
    """(root, attempt, its state) of the attempt that decides a failure receipt (state None: no
    attempt item)."""
    message = item["pk"]["S"]
    root, number = links.get(message, (message.removeprefix("MSG#"), 0))
    attempt = by_key.get((f"MSG#{root}", f"ATTEMPT#{number + 1:03d}"))
    return root, number + 1, attempt["state"]["S"] if attempt else None


def stored_failures(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        i
        for i in items
        if i["sk"]["S"].startswith("RCPT#") and i["status"]["S"] in ("undelivered", "failed")
    ]


def redeliver_marker(message: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        marker = json.loads(message.get("attributes") or "{}").get("redeliver")
        if isinstance(marker, dict):
            return marker
    return {}


def action_of(message: dict[str, Any]) -> str:
    """How a message Redeliver created was sent: `fallback_sms`, `template` or `retry`."""
    if redeliver_marker(message).get("channel") == "sms":
        return "fallback_sms"
    return "template" if message.get("content_sid") else "retry"


def actions_as_configured(offline: Offline) -> Check:
    """Each message Redeliver created is what its action says: a template carries the rule's
    ContentSid and no Body; an SMS fallback goes to the original's recipient, by SMS, from the
    rule's number."""
    check = Check("each resend as its action says")
    template, fallback = OFFLINE_ONLY_RULES
    conversation_of = {
        message: receipts[0]["conversation_sid"]
        for message, receipts in list(offline.sim.receipts.items())
        if receipts
    }
    counted = 0
    for message in list(offline.sim.created):
        marker = redeliver_marker(message)
        action = action_of(message)
        if not marker or action == "retry":
            continue
        counted += 1
        if action == "template":
            if message.get("content_sid") != template["content_sid"] or message.get("body"):
                check.violations.append(
                    f"{message['sid']} (template) has ContentSid {message.get('content_sid')} "
                    f"and Body {message.get('body')!r}"
                )
            continue
        root = offline.sim.conversations.get(conversation_of.get(str(marker.get("root")), ""))
        chat = offline.sim.conversations.get(message["conversation_sid"])
        wanted = {
            str(p["messaging_binding"]["address"]).removeprefix("whatsapp:")
            for p in (root.participants if root else [])
            if p["messaging_binding"]
        }
        bindings = [p["messaging_binding"] for p in (chat.participants if chat else [])]
        if not any(
            b and b["type"] == "sms" and b["address"] in wanted and b["proxy_address"] == SMS_FROM
            for b in bindings
        ):
            check.violations.append(
                f"{message['sid']} (fallback_sms for {marker.get('root')}, to {sorted(wanted)}) "
                f"is in a conversation without that SMS recipient from {fallback['from']}"
            )
    check.evidence = f"{counted} template and SMS-fallback message(s)"
    return check


# An E.164 number as a log line could carry it: plain, or URL-encoded in a query (%2B...).
E164 = re.compile(r"(?<![\w%])(?:\+|%2B)[1-9]\d{7,14}(?!\d)", re.IGNORECASE)


def no_phone_numbers_logged(log: Path) -> Check:
    """No line any function logged carries a phone number (invariant 7): not ours, and not what
    libraries log for us (the containers' root logger writes at ApplicationLogLevel, as Lambda's
    does)."""
    check = Check("no phone number in any function's log")
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    leaks = [line for line in lines if E164.search(line)]
    for line in leaks[:5]:
        check.violations.append(f"logged: {line[:160]}")
    if len(leaks) > 5:
        check.violations.append(f"... and {len(leaks) - 5} more line(s)")
    check.evidence = f"{len(lines)} lines read"
    return check


def _recovered(attempt: dict[str, Any], reached: set[str]) -> bool:
    """A sent attempt whose follow-up judged it, and whose retry's receipt says delivered or read:
    a recovery the follow-up saw, so it was published (follow_up.py looks LOOKS times)."""
    return "followed_up_at" in attempt and attempt["new_message_sid"]["S"] in reached


def _decisions(items: list[dict[str, Any]]) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """The event_id each recorded decision's event must carry (and what it is), and the sent
    attempts (root, number)."""
    expected: dict[str, str] = {}
    sent: set[tuple[str, str]] = set()
    reached = {  # messages whose receipt says delivered or read
        i["pk"]["S"].removeprefix("MSG#")
        for i in items
        if i["sk"]["S"].startswith("RCPT#")
        and i.get("status", {}).get("S") in ("delivered", "read")
    }
    for item in items:
        if not item["sk"]["S"].startswith("ATTEMPT#"):
            continue
        root = item["pk"]["S"].removeprefix("MSG#")
        number = int(item["sk"]["S"].removeprefix("ATTEMPT#"))
        state, reason = item["state"]["S"], item.get("reason", {}).get("S", "")
        if state == "sent":
            sent.add((root, str(number)))
            expected[event_id(root, number, DetailType.RETRY_SENT)] = f"{root} #{number} sent"
            if _recovered(item, reached):
                key = event_id(root, number, DetailType.RETRY_RECOVERED)
                expected[key] = f"{root} #{number} recovered"
        elif state == "gave_up":
            expected[event_id(root, number, DetailType.GAVE_UP, reason)] = (
                f"{root} #{number} gave up"
            )
            if reason == "suppressed":
                key = event_id(root, number, DetailType.RECIPIENT_SUPPRESSED)
                expected[key] = f"{root} #{number} suppressed"
    return expected, sent


def one_event_per_decision(items: list[dict[str, Any]], published: list[Published]) -> Check:
    """Every decision recorded (an attempt sent or given up, a suppression, a followed-up retry
    whose receipt says delivered or read) has exactly one outcome event on the bus, with its
    event_id; a recovery names a sent attempt; every event
    item in the table was published; no event carries a number (DESIGN, "Outcome events")."""
    check = Check("one outcome event per recorded decision, none with a number")
    expected, sent = _decisions(items)
    ids = [e.detail.get("event_id", "") for e in published]
    stored = {
        i["pk"]["S"].removeprefix("EVENT#") for i in items if i["pk"]["S"].startswith("EVENT#")
    }
    for key, what in sorted(expected.items(), key=lambda kv: kv[1]):
        if ids.count(key) != 1:
            check.violations.append(f"{what}: {ids.count(key)} event(s)")
    for key in sorted(stored - set(ids)):
        check.violations.append(f"event item {key[:12]}… never published")
    for event in published:
        recovered = event.detail_type == DetailType.RETRY_RECOVERED.value
        if recovered and (event.detail["root"], event.detail["attempt"]) not in sent:
            check.violations.append(f"recovered names no sent attempt: {event.detail['root']}")
        if recovered and ids.count(event.detail["event_id"]) != 1:
            check.violations.append(f"recovered twice: {event.detail['root']}")
        text = json.dumps(event.detail)
        if E164.search(text) or "+" in text:
            check.violations.append(f"a number in {event.detail_type} {event.detail['event_id']}")
    check.evidence = f"{len(expected)} decision(s), {len(published)} event(s)"
    return check


def no_group_sends(offline: Offline) -> Check:
    """No new message went into a conversation with more than one non-chat recipient (invariant
    5): counted as Twilio stored it, at the moment of the create."""
    check = Check("no new message in a group conversation")
    created = {str(m["sid"]) for m in offline.sim.created}
    at_create = {sid: n for sid, n in offline.recipients_at_create.items() if sid in created}
    for sid, recipients in sorted(at_create.items()):
        if recipients > 1:
            check.violations.append(f"{sid} went to {recipients} recipients")
    check.evidence = f"{len(at_create)} new message(s)"
    return check


def one_message_per_attempt(
    created: list[dict[str, Any]], items: list[dict[str, Any]], dead: Sequence[str] = ()
) -> Check:
    """Exactly one new message per (root, attempt): none doubled, and every message Twilio stored
    is the one its attempt records as sent (a message out for an attempt recorded given up, or
    still claimed, is a send nobody knows of) — unless the attempt is still claimed and its job
    waits in the DLQ (`dead`: the DLQ's bodies): creates that kept failing ambiguously used up its
    receives, the DLQ is alarmed, and a redrive's stale-claim search finds and records the
    message (the protocol model test redrives and checks it does)."""
    check = Check("exactly one new message per attempt")
    in_the_dlq = _dead_message_sids(dead)
    awaiting = 0
    sends: dict[tuple[str | None, int | None], list[str]] = {}
    for message in created:
        try:
            marker = json.loads(message.get("attributes") or "{}").get("redeliver", {})
        except ValueError:
            marker = {}
        sends.setdefault((marker.get("root"), marker.get("attempt")), []).append(message["sid"])
    attempts = {
        (i["pk"]["S"].removeprefix("MSG#"), int(i["sk"]["S"].removeprefix("ATTEMPT#"))): i
        for i in items
        if i["sk"]["S"].startswith("ATTEMPT#")
    }
    for (root, number), sids in sorted(sends.items(), key=str):
        if len(sids) > 1:
            check.violations.append(f"{len(sids)} messages sent for {root} attempt {number}")
            continue
        attempt = attempts.get((str(root), int(number or 0)))
        state = attempt["state"]["S"] if attempt else "no attempt item"
        recorded = attempt.get("new_message_sid", {}).get("S") if attempt else None
        retried = attempt.get("retry_of", {}).get("S") if attempt else None
        if state == "claimed" and {root, retried} & in_the_dlq:
            awaiting += 1
            continue
        if state != "sent" or recorded != sids[0]:
            check.violations.append(
                f"{sids[0]} went out for {root} attempt {number}, recorded as {state}"
                + (f" with {recorded}" if recorded and recorded != sids[0] else "")
            )
    for (root, number), attempt in sorted(attempts.items()):
        if attempt["state"]["S"] == "sent" and (root, number) not in sends:
            check.violations.append(f"{root} attempt {number} recorded sent, no message went out")
    check.evidence = f"{len(created)} messages created, {len(attempts)} attempts recorded" + (
        f", {awaiting} still claimed with its job in the DLQ (a redrive records it)"
        if awaiting
        else ""
    )
    return check


def _dead_message_sids(dead: Sequence[str]) -> set[str | None]:
    """The failed messages whose retry jobs wait in the DLQ."""
    sids: set[str | None] = set()
    for body in dead:
        try:
            event = json.loads(body).get("event") or {}
        except (ValueError, AttributeError):
            continue
        if isinstance(event, dict) and isinstance(event.get("message_sid"), str):
            sids.add(event["message_sid"])
    return sids


def failures_decided(
    items: list[dict[str, Any]],
    by_key: dict[tuple[str, str], dict[str, Any]],
    links: dict[str, tuple[str, int]],
    dead: list[str],
    *,
    truth: dict[Receipt, dict[str, Any]] | None = None,
    reached: set[str] | None = None,
    lost: set[tuple[str, str, str]] | None = None,
) -> Check:
    """Every failure Twilio holds (`truth`), its webhook lost or not, is stored, and every stored
    failure is decided (retried or given up) in its own chain, or its job is in the DLQ, where
    the DLQ alarm makes it visible. A failure of a receipt no webhook of which reached ingest
    (none in `reached`) is invisible to Redeliver, as in production: counted, not a violation."""
    check = Check("every failure decided or visible in the DLQ")
    in_dlq = {describe_job(body).split(" ", 1)[0] for body in dead}
    invisible = unlearned = 0
    for (message, sid), receipt in sorted((truth or {}).items()):
        if receipt["status"] not in FAILURE_STATUSES:
            continue
        item = by_key.get((f"MSG#{message}", f"RCPT#{sid}"))
        stored = item["status"]["S"] if item else None
        if stored == receipt["status"]:
            continue
        if item is None and sid not in (reached or set()):
            invisible += 1
            continue
        unlearned += 1
        how = "its webhook lost" if (message, sid, receipt["status"]) in (lost or set()) else ""
        check.violations.append(
            f"failure of {message} (Twilio: {receipt['status']} {receipt['error_code']}"
            f"{', ' + how if how else ''}) is stored as {stored or 'nothing'}: never learned"
        )
    failures = stored_failures(items)
    for item in failures:
        root, number, state = failure_decision(item, by_key, links)
        message = item["pk"]["S"].removeprefix("MSG#")
        if state in ("sent", "gave_up") or message in in_dlq:
            continue
        elsewhere = by_key.get((item["pk"]["S"], "ATTEMPT#001")) if root != message else None
        check.violations.append(
            f"failure of {message} left without a decision: {root} attempt {number} is "
            f"{state or 'not recorded'}"
            + (
                f" (an attempt was recorded under {message} itself, as a root: "
                f"{elsewhere['state']['S']})"
                if elsewhere
                else ""
            )
        )
    check.evidence = f"{len(failures)} failures stored, {len(dead)} job(s) in the DLQ"
    if truth is not None:
        held = sum(1 for r in truth.values() if r["status"] in FAILURE_STATUSES)
        check.evidence += (
            f"; {held} failures at Twilio, {unlearned} never learned, {invisible} invisible "
            "(no webhook of theirs arrived)"
        )
    return check


def no_server_errors(offline: Offline, killed: int = 0) -> Check:
    """Ingest never answers 5xx for valid input: the only 5xx allowed are the `killed` ingest
    invocations (make chaos kills containers: API Gateway then answers 500)."""
    check = Check("no 5xx for valid input" + (" but the injected kills" if killed else ""))
    server_errors = {s: n for s, n in offline.api.answers.items() if s >= 500}
    if sum(server_errors.values()) > killed:
        check.violations.append(
            f"ingest answered 5xx {sum(server_errors.values())} times {server_errors}"
            + (f", {killed} of them injected kills" if killed else "")
        )
    if offline.emitter and offline.emitter.stats.errors:
        check.violations.append(f"{offline.emitter.stats.errors} webhook(s) got no answer")
    answered = sum(offline.api.answers.values())
    check.evidence = f"{answered} answers" + (f", {killed} kills" if killed else "")
    return check
