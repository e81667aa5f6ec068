"""Outcome events in the template: off by default (nothing deployed, no stream), and when
EventBusName is set, a pipe from the table's stream to that bus only, least privilege, with an
encrypted, alarmed DLQ. sam validate --lint, cfn-lint, checkov and sam build run over the whole
template in test_template.py and test_checkov.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from redeliver.adapters.dynamodb.outcome_events import PREFIX, SORT_KEY
from redeliver.domain.outcome_events import DETAIL_FIELDS, SOURCE, DetailType
from tools.pipes import definition, matches, transform
from tools.stack import load_template

BUS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
    ":event-bus/${EventBusName}"
}
CONDITIONAL = (
    "OutcomeEventsPipe",
    "OutcomeEventsPipeRole",
    "OutcomeEventsDLQ",
    "OutcomeEventsDLQNotEmptyAlarm",
)


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_template()


def test_the_parameter_is_off_when_empty_and_takes_a_bus_name(sam: dict[str, Any]) -> None:
    parameter = sam["Parameters"]["EventBusName"]
    assert parameter["Default"] == ""
    assert sam["Conditions"]["OutcomeEventsOn"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "EventBusName"}, ""]}]
    }
    for name in CONDITIONAL:
        assert sam["Resources"][name]["Condition"] == "OutcomeEventsOn", name


def test_the_stream_and_the_retry_function_s_switch_exist_only_when_on(sam: dict[str, Any]) -> None:
    table = sam["Resources"]["ReceiptsTable"]["Properties"]
    assert table["StreamSpecification"] == {
        "Fn::If": ["OutcomeEventsOn", {"StreamViewType": "NEW_IMAGE"}, {"Ref": "AWS::NoValue"}]
    }
    env = sam["Resources"]["RetryFunction"]["Properties"]["Environment"]["Variables"]
    assert env["OUTCOME_EVENTS"] == {"Fn::If": ["OutcomeEventsOn", "true", ""]}
    for name, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function" and name != "RetryFunction":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert "OUTCOME_EVENTS" not in variables, name


def test_the_pipe_reads_the_stream_filters_event_inserts_and_targets_the_bus(
    sam: dict[str, Any],
) -> None:
    pipe = sam["Resources"]["OutcomeEventsPipe"]["Properties"]
    assert pipe["Source"] == {"Fn::GetAtt": ["ReceiptsTable", "StreamArn"]}
    assert pipe["Target"] == BUS_ARN
    stream = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert stream["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["OutcomeEventsDLQ", "Arn"]}}
    assert stream["MaximumRetryAttempts"] > 0
    spec = definition(sam)
    assert spec.source == SOURCE
    assert spec.pattern == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {"sk": {"S": [SORT_KEY]}}},
    }
    item = {"pk": {"S": PREFIX + "ab"}, "sk": {"S": SORT_KEY}, "detail_type": {"S": "Gave Up"}}
    item.update({name: {"S": f"v-{name}"} for name in DETAIL_FIELDS})
    record = {"eventName": "INSERT", "dynamodb": {"NewImage": item}}
    assert matches(spec.pattern, record)
    assert not matches(spec.pattern, {**record, "eventName": "MODIFY"})
    receipt = {"eventName": "INSERT", "dynamodb": {"NewImage": {"sk": {"S": "RCPT#DY1"}}}}
    assert not matches(spec.pattern, receipt)
    # the input template carries every detail field, and only those
    assert transform(spec.input_template, record) == {n: f"v-{n}" for n in DETAIL_FIELDS}
    assert spec.detail_type_path == "$.dynamodb.NewImage.detail_type.S"
    assert {t.value for t in DetailType} == {
        "Retry Sent",
        "Retry Recovered",
        "Gave Up",
        "Recipient Suppressed",
    }


def test_the_pipe_role_may_read_that_stream_and_put_events_on_that_bus_only(
    sam: dict[str, Any],
) -> None:
    role = sam["Resources"]["OutcomeEventsPipeRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "pipes.amazonaws.com"}]
    [policy] = role["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["PublishToTheBusOnly"]["Action"] == "events:PutEvents"
    assert statements["PublishToTheBusOnly"]["Resource"] == BUS_ARN
    assert statements["ReadTheTableStream"]["Resource"] == {
        "Fn::GetAtt": ["ReceiptsTable", "StreamArn"]
    }
    assert all(
        not a.startswith("dynamodb:")
        or a
        in {
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        }
        for a in statements["ReadTheTableStream"]["Action"]
    )
    assert statements["DeadLetters"] == {
        "Sid": "DeadLetters",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["OutcomeEventsDLQ", "Arn"]},
    }
    text = json.dumps(policy)
    assert '"*"' not in text
    assert "events:*" not in text


def test_the_dlq_is_encrypted_kept_two_weeks_and_alarmed(sam: dict[str, Any]) -> None:
    dlq = sam["Resources"]["OutcomeEventsDLQ"]["Properties"]
    assert dlq["KmsMasterKeyId"] == "alias/aws/sqs"
    assert dlq["MessageRetentionPeriod"] == 1209600
    alarm = sam["Resources"]["OutcomeEventsDLQNotEmptyAlarm"]["Properties"]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["OutcomeEventsDLQ", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
