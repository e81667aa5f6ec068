"""OutcomeEventsPipe against what real EventBridge Pipes and DynamoDB Streams do, which neither
moto (no Pipes) nor tools/pipes.py (no retries, no DLQ, no record age, no pipe state) shows.

Sources (AWS EventBridge User Guide, awsdocs/amazon-eventbridge-user-guide):
- eb-pipes-error-troubleshooting.md, "Troubleshooting": "If you specify a `DeadLetterConfig` for a
  pipe with a Kinesis or DynamoDB source, make sure that the `MaximumRecordAgeInSeconds` property
  on the pipe is less than the `MaximumRecordAge` of the source event. `MaximumRecordAgeInSeconds`
  controls when the pipe poller will give up on the event and deliver it to the DLQ and the
  `MaximumRecordAge` controls how long the message will be visible in the source stream before it
  gets deleted."  A DynamoDB stream keeps a record 24 hours (its `MaximumRecordAge`).
- same page, "Retry behavior and error handling": "For nearly continuous 4xx errors (such as
  authorization problems with IAM or missing resources), the pipe can be automatically disabled
  with an explanatory message in the `StateReason`."
- eb-pipes-monitoring.md: the pipe's CloudWatch metrics (`AWS/EventBridge/Pipes`, dimension
  `PipeName`): `ExecutionFailed`, `ExecutionPartiallyFailed`, `TargetStageFailed`, ...
- API reference, PipeSourceDynamoDBStreamParameters: MaximumRecordAgeInSeconds -1 (the default)
  "sets the maximum age to infinite ... EventBridge never discards old records"; the console
  takes a maximum age "between one minute (00:01) and 24 hours (24:00)" (eb-pipes-dynamodb.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.docs.markdown import ROOT
from tools.stack import load_template

STREAM_RETENTION_SECONDS = 24 * 3600  # DynamoDB Streams: a record is trimmed after 24 hours
PIPE_FAILURE_METRICS = {"ExecutionFailed", "ExecutionPartiallyFailed", "TargetStageFailed"}


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_template()


def test_a_record_the_pipe_cannot_publish_reaches_its_dlq_before_the_stream_trims_it(
    sam: dict[str, Any],
) -> None:
    """`MaximumRecordAgeInSeconds: -1` never gives a record up for age, but the stream gives it up
    at 24 hours. While the bus refuses PutEvents, one batch holds its shard through 185 backed-off
    retries and every later record waits behind it; a record still waiting at 24 hours is trimmed
    from the stream without a DLQ message, so OutcomeEventsDLQNotEmptyAlarm never fires and the
    runbook never starts: its event is never published (LOST). AWS says to keep the pipe's
    maximum age below the source's, leaving time to read what the DLQ names."""
    stream = sam["Resources"]["OutcomeEventsPipe"]["Properties"]["SourceParameters"][
        "DynamoDBStreamParameters"
    ]
    assert "DeadLetterConfig" in stream
    age = stream.get("MaximumRecordAgeInSeconds", -1)
    assert 60 <= age < STREAM_RETENTION_SECONDS, (
        f"MaximumRecordAgeInSeconds {age}: a record older than the stream's 24 h is trimmed, "
        "never dead-lettered"
    )


def _alarm_metrics(sam: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if "MetricName" in props:
            yield name, resource, props
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                yield name, resource, query["MetricStat"]["Metric"]


def test_a_pipe_that_keeps_failing_or_is_disabled_is_alarmed_not_only_through_its_dlq(
    sam: dict[str, Any],
) -> None:
    """The runbook's usual causes (the bus deleted or renamed, its resource policy or the role's
    events:PutEvents no longer allowing it) are the continuous 4xx errors for which Pipes may
    disable the pipe. A disabled pipe reads nothing and sends nothing to OutcomeEventsDLQ, so the
    stack's only outcome-events alarm (DLQ not empty) stays OK while every decision's stream
    record ages out after 24 hours: events LOST, silently. An alarm on the pipe's own failure
    metrics (AWS/EventBridge/Pipes, PipeName) fires at the first failed executions."""
    watching = [
        name
        for name, resource, metric in _alarm_metrics(sam)
        if metric.get("Namespace") == "AWS/EventBridge/Pipes"
        and metric.get("MetricName") in PIPE_FAILURE_METRICS
        and {"Name": "PipeName", "Value": {"Ref": "OutcomeEventsPipe"}}
        in metric.get("Dimensions", [])
        and resource.get("Condition") == "OutcomeEventsOn"
    ]
    assert watching, "no alarm watches OutcomeEventsPipe's ExecutionFailed / TargetStageFailed"


def test_the_sample_rule_keeps_a_gave_up_event_it_cannot_deliver() -> None:
    """events/gave-up-rule.yaml (the README's way to consume `Gave Up`) targets a queue with no
    DeadLetterConfig. EventBridge User Guide, eb-rule-dlq.md: "If an event isn't delivered after
    all retry attempts are exhausted, the event is dropped"; and for "missing permissions to a
    target, or a target resource that no longer exists ... Rather than retrying, EventBridge
    sends these events directly to the DLQ, if you have one". The sample's own header says the
    queue's policy must admit events.amazonaws.com, which the sample does not create (moto's
    EventBridge delivers without it, so tests/integration never sees this): a copied sample with
    the policy missing drops every Gave Up event at once, with nothing to alarm on (LOST)."""
    rule = yaml.safe_load((ROOT / "events" / "gave-up-rule.yaml").read_text())
    targets = rule["Resources"]["RedeliverGaveUpRule"]["Properties"]["Targets"]
    for target in targets:
        assert "DeadLetterConfig" in target, f"target {target['Id']} drops what it cannot deliver"
