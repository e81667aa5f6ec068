"""Outcome events (EventBusName set): each recorded decision reaches the bus, once per event_id,
even when the worker dies right after recording it; never a number or a body.

The template is deployed into moto with EventBusName=redeliver-outcomes (`default` deploys
too, but moto matches the stack's schedule rules on the default bus against every put event and
fails invoking their Lambda targets; AWS does not match a schedule rule to events); ingest and
retry are the real handlers. moto has no Pipes: tools/pipes.py reads the table's stream as
OutcomeEventsPipe would, with the template's own filter and input template, and puts each event
on moto's bus. Where
moto's stream differs from DynamoDB's (a no-op write leaves a MODIFY record; a cancelled
transaction's record), tools/pipes.py says so, and its INSERT filter and read-back handle it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import jsonschema
import pytest
import yaml

from redeliver.domain.chain import Chain
from redeliver.domain.outcome_events import DETAIL_FIELDS
from tests.integration.retry_system import T0, RetrySystem, after
from tests.integration.test_retry_v2 import NEW_YORK, POLICY
from tools.pipes import OutcomeEventsPipe, Published
from tools.stack import ROOT, DeployedStack, deploy
from tools.twilio_sim.simulator import TwilioSimulator

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SCHEMAS = {
    "Retry Sent": "retry-sent",
    "Retry Recovered": "retry-recovered",
    "Gave Up": "gave-up",
    "Recipient Suppressed": "recipient-suppressed",
}
SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")


BUS = "redeliver-outcomes"


@pytest.fixture
def stack(aws: None) -> DeployedStack:
    boto3.client("events").create_event_bus(Name=BUS)
    return deploy(f"redeliver-{uuid.uuid4().hex[:8]}", {"EventBusName": BUS})


@pytest.fixture
def pipe(system: RetrySystem) -> OutcomeEventsPipe:
    return OutcomeEventsPipe(
        system.dynamodb,
        boto3.client("dynamodbstreams"),
        boto3.client("events"),
        system.table,
        bus=BUS,
    )


def of_type(events: list[Published], detail_type: str) -> list[Published]:
    return [e for e in events if e.detail_type == detail_type]


def assert_no_pii(events: list[Published], sim: TwilioSimulator) -> None:
    bodies = {m["Body"] for c in sim.conversations.values() for m in c.messages if m.get("Body")}
    for event in events:
        text = json.dumps(event.detail)
        assert not any(body in text for body in bodies), text
        assert set(event.detail) == set(DETAIL_FIELDS)
        schema = ROOT / "events" / "schemas" / f"{SCHEMAS[event.detail_type]}.json"
        jsonschema.validate(event.detail, json.loads(schema.read_text()))
        assert re.fullmatch(r"[0-9a-f]{64}", event.detail["event_id"])
        for name, value in event.detail.items():
            assert "+" not in value, (name, value)
            if name.endswith("_sid") or name == "root":
                assert value == "" or SID.fullmatch(value), (name, value)
            elif name != "event_id":
                assert not re.search(r"\d{7,}", value), (name, value)  # no number, even bare


def test_retry_sent_then_recovered(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    assert system.stack.environment("RetryFunction")["OUTCOME_EVENTS"] == "true"
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll()  # the retry, and its follow-up queued
    [new] = system.created(conversation)
    sim.set_receipt(new["sid"], "delivered", updated=T0 + timedelta(seconds=30))
    system.drain()  # the follow-up: recovered
    events = pipe.pump()
    [sent] = of_type(events, "Retry Sent")
    [recovered] = of_type(events, "Retry Recovered")
    assert sent.source == recovered.source == "redeliver"
    assert sent.detail | {"event_id": ""} == {
        "event_id": "",
        "account_sid": sent.detail["account_sid"],
        "chat_service_sid": sim.service_of(conversation),
        "conversation_sid": conversation,
        "message_sid": original,
        "new_message_sid": new["sid"],
        "root": original,
        "attempt": "1",
        "error_code": "30003",
        "action": "retry",
        "reason": "",
    }
    assert sent.detail["account_sid"].startswith("AC")
    assert recovered.detail["new_message_sid"] == new["sid"]
    assert (recovered.detail["root"], recovered.detail["attempt"]) == (original, "1")
    assert len(events) == 2
    assert_no_pii(events, sim)


def test_gave_up_carries_its_reason_and_a_rule_routes_it(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    # The README's sample rule (events/gave-up-rule.yaml), on moto's bus, to a queue.
    rule = yaml.safe_load((ROOT / "events" / "gave-up-rule.yaml").read_text())
    pattern = rule["Resources"]["RedeliverGaveUpRule"]["Properties"]["EventPattern"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="gave-up")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    bridge = boto3.client("events")
    bridge.put_rule(Name="gave-up", EventPattern=json.dumps(pattern), EventBusName=BUS)
    bridge.put_targets(
        Rule="gave-up",
        EventBusName=BUS,
        Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
    )

    conversation, original = system.message()
    system.fail(conversation, original, 30007)  # the default policy gives it up
    system.drain()
    events = pipe.pump()
    [gave_up] = events
    assert gave_up.detail_type == "Gave Up"
    assert (gave_up.detail["reason"], gave_up.detail["error_code"]) == ("permanent_error", "30007")
    routed = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    [message] = routed
    body = json.loads(message["Body"])
    assert (body["source"], body["detail-type"]) == ("redeliver", "Gave Up")
    assert body["detail"]["event_id"] == gave_up.detail["event_id"]
    assert_no_pii(events, sim)


def test_a_suppression_publishes_recipient_suppressed_and_its_give_up(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    system.load_retry(POLICY)
    conversation, original = system.message(address=NEW_YORK)
    system.fail(conversation, original, 21610, status="failed")
    system.drain()
    events = pipe.pump()
    assert Counter(e.detail_type for e in events) == {"Recipient Suppressed": 1, "Gave Up": 1}
    [suppressed] = of_type(events, "Recipient Suppressed")
    assert (suppressed.detail["action"], suppressed.detail["root"]) == ("suppress", original)
    assert of_type(events, "Gave Up")[0].detail["reason"] == "suppressed"
    assert_no_pii(events, sim)
    assert "12125550100" not in json.dumps([e.detail for e in events])


def test_a_crash_right_after_the_record_still_publishes_once(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    attempts = system.retry.worker._attempts
    real = attempts.record_sent
    system.monkeypatch.setattr(attempts, "record_sent", after(real))
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll(crash=True)  # recorded, then the runtime died: nothing after it ran
    [first] = pipe.pump()
    assert first.detail_type == "Retry Sent"

    system.monkeypatch.setattr(attempts, "record_sent", real)
    system.redeliver_now()
    system.drain()  # the record comes back: a duplicate; its follow-up queued again
    assert len(system.created(conversation)) == 1
    assert of_type(pipe.pump(), "Retry Sent") == []  # no second event
    assert pipe.phantoms == 0
    assert_no_pii([first], sim)


def test_a_crash_right_after_a_give_up_still_publishes_once(
    system: RetrySystem, sim: TwilioSimulator, pipe: OutcomeEventsPipe
) -> None:
    attempts = system.retry.worker._attempts
    real = attempts.record_give_up
    system.monkeypatch.setattr(attempts, "record_give_up", after(real))
    conversation, original = system.message()
    system.fail(conversation, original, 30007)
    system.poll(crash=True)
    system.monkeypatch.setattr(attempts, "record_give_up", real)
    system.redeliver_now()
    system.drain()
    events = pipe.pump()
    assert [e.detail_type for e in events] == ["Gave Up"]
    assert_no_pii(events, sim)


def test_a_decision_recorded_again_keeps_one_event_id(
    system: RetrySystem, pipe: OutcomeEventsPipe
) -> None:
    """record_sent written twice (a stale claim's search finding the message after the first
    record's answer was lost): the second transaction is cancelled by the event item alone, and
    that is success, not an error; still one event. (moto, like DynamoDB, names each item's
    cancellation reason: "None" for the decision's, ConditionalCheckFailed for the event's.)"""
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll()
    [sent] = pipe.pump()
    [event_item] = [
        i
        for i in system.dynamodb.scan(TableName=system.table)["Items"]
        if i["pk"]["S"].startswith("EVENT#")
    ]
    assert event_item["pk"]["S"] == "EVENT#" + sent.detail["event_id"]
    again: TransactWriteItemTypeDef = {
        "Put": {
            "TableName": system.table,
            "Item": event_item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    new = system.attempts(original)[1]["new_message_sid"]
    chain = Chain(original, 1, T0)
    attempts = system.retry.worker._attempts
    attempts.record_sent(chain, new, original, 0, conversation, events=[again])  # no error
    assert pipe.pump() == []


def test_off_by_default_writes_no_event_and_the_table_has_no_stream(
    aws: None, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = deploy(f"redeliver-{uuid.uuid4().hex[:8]}")
    system = RetrySystem(plain, sim, monkeypatch)
    assert plain.environment("RetryFunction")["OUTCOME_EVENTS"] == ""
    assert system.retry.worker._claims._events is None
    conversation, original = system.message()
    system.fail(conversation, original, 30003)
    system.poll()
    items = system.dynamodb.scan(TableName=system.table)["Items"]
    assert not [i for i in items if i["pk"]["S"].startswith("EVENT#")]
    table = system.dynamodb.describe_table(TableName=system.table)["Table"]
    assert "LatestStreamArn" not in table
