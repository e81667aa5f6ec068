"""Every alarm and dashboard series watches a metric the handlers really emit.

The handlers run every path (receipts of each kind, rejections, a fault, retries sent, waited,
given up and followed up, a sweep) against the template deployed into moto, with their EMF output
captured; the template's metrics must be among those, with exactly the same dimension names.
moto does not create alarms or dashboards (tools/stack.py): they are read from template.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from redeliver.usecases.retry.follow_up import LOOKS
from tests.integration.retry_system import RetrySystem
from tests.integration.test_ingest import secrets_manager_down
from tests.lambdas import invoke, load_function, metric_names
from tools.apigw import http_api_event
from tools.lambdas import FakeContext, emitted_metrics
from tools.samples import receipt_fields
from tools.sqs_poller import poll_once
from tools.stack import TEST_AUTH_TOKEN, DeployedStack, load_template
from tools.twilio_sim.simulator import TwilioSimulator

NAMESPACE = "Redeliver"
Series = tuple[str, frozenset[str]]


def run_every_path(
    system: RetrySystem, stack: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation, retried = system.message()
    system.fail(conversation, retried, 30003)  # NewFailures, NewFailuresByClass
    system.poll()  # RetrySent, follow-up queued
    [new] = system.created(conversation)
    system.sim.set_receipt(new["sid"], "delivered")  # what its follow-up learns from Twilio
    system.poll()  # RetryRecovered
    other, recovered_not = system.message()
    system.fail(other, recovered_not, 30008)
    system.poll()
    [again] = system.created(other)
    system.sim.set_receipt(again["sid"], "undelivered", 30008)
    system.poll()  # RetryNotRecovered, FollowUpFailures, and the retry's own failure job
    third, unconfirmed = system.message()
    system.fail(third, unconfirmed, 30001)
    system.poll()
    for _ in range(LOOKS):
        system.poll()  # looks at the retry still `sent`, the last one: RetryUnconfirmed
    fourth, given_up = system.message()
    system.fail(fourth, given_up, 30005, status="failed")
    system.poll()  # RetryGaveUp, RetryGaveUpByReason
    fifth, waiting = system.message()
    system.now = system.now.replace(minute=0, second=8)
    system.fail(fifth, waiting, 30003)
    system.poll()  # RetryWaiting (a frozen clock: the job keeps waiting)
    system.sqs.send_message(QueueUrl=system.queue_url, MessageBody="not a job")
    system.poll()  # RetryError

    ingest = system.ingest
    for fields in (
        receipt_fields("sent", message="m"),
        receipt_fields("sent", message="m"),
        receipt_fields("delivered", message="m", updated="2026-11-27T10:00:09Z"),
        receipt_fields("sent", message="m", updated="2026-11-27T09:00:00Z"),
        receipt_fields("read", message="x", updated="2026-11-27T09:00:00Z"),
    ):
        invoke(ingest, http_api_event(fields, token="redeliver-test-auth-token-not-a-secret"))
    invoke(ingest, http_api_event(receipt_fields(), token="forged"))  # SignatureRejected
    bad = receipt_fields()
    del bad["Status"]
    invoke(ingest, http_api_event(bad, token="redeliver-test-auth-token-not-a-secret"))
    unknown = receipt_fields("delivered_to_handset", message="u")
    invoke(ingest, http_api_event(unknown, token="redeliver-test-auth-token-not-a-secret"))
    other_event = receipt_fields("sent", message="o")
    other_event["EventType"] = "onMessageAdded"
    invoke(ingest, http_api_event(other_event, token="redeliver-test-auth-token-not-a-secret"))

    broken = load_function(
        "ingest",
        {**stack.environment("IngestFunction"), "RETRY_QUEUE_URL": system.queue_url + "-gone"},
        monkeypatch,
    )
    invoke(
        broken,
        http_api_event(
            receipt_fields("failed", message="q", error_code=63016),
            token="redeliver-test-auth-token-not-a-secret",
        ),
    )
    sweeper = load_function(
        "sweep", {**stack.environment("SweepFunction"), "SWEEP_GRACE_SECONDS": "0"}, monkeypatch
    )
    invoke(sweeper, {})  # SweptFailures (the failure whose enqueue was lost just now)
    reconcile_and_spill(system, stack, monkeypatch)
    secrets_manager_down([], ingest)
    invoke(
        ingest,
        http_api_event(receipt_fields("sent", message="stale"), token=TEST_AUTH_TOKEN),
    )  # StaleCredentials
    boto3.client("dynamodb").delete_table(TableName=system.table)
    boto3.client("sqs").delete_queue(QueueUrl=stack.outputs["SpillQueueUrl"])  # both fail: 500
    invoke(
        ingest,
        http_api_event(
            receipt_fields("sent", message="z"), token="redeliver-test-auth-token-not-a-secret"
        ),
    )  # IngestFaults


def reconcile_and_spill(
    system: RetrySystem, stack: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconciliation and spill: a failure only the Receipts API reports, a receipt left alone,
    a spilled write."""
    reconcile = load_function(
        "reconcile",
        {**stack.environment("ReconcileFunction"), "TWILIO_CONVERSATIONS_URL": system.sim.url},
        monkeypatch,
    )
    lost, left = system.message(), system.message()
    for conversation, message in (lost, left):
        fields = receipt_fields(
            "sent",
            message=message,
            conversation=conversation,
            receipt=system.sim.receipts[message][0]["sid"],
            updated="2026-11-27T10:00:05Z",
        )
        fields["ChatServiceSid"] = system.sim.service_of(conversation)
        invoke(system.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
    system.sim.set_receipt(lost[1], "failed", 30007, updated=system.now)  # its webhook is lost
    for hours in (1, 2, 3):  # ReconciledFailures, ReconciledReceipts; ReconcileLeftAlone
        reconcile.reconciler._clock = lambda hours=hours: system.now.timestamp() + hours * 3600
        reconcile.lambda_handler({}, FakeContext(remaining_ms=60_000))

    throttled = load_function("ingest", stack.environment("IngestFunction"), monkeypatch)

    def update_item(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException"}}, "UpdateItem")

    monkeypatch.setattr(throttled.ingest.recorder._receipts._db, "update_item", update_item)
    spilled = receipt_fields("delivered", message="spilled")
    invoke(throttled, http_api_event(spilled, token=TEST_AUTH_TOKEN))  # SpilledReceipts
    spill = load_function("spill", stack.environment("SpillFunction"), monkeypatch)
    poll_once(system.sqs, stack.outputs["SpillQueueUrl"], spill.lambda_handler)  # SpillReplayed


@pytest.fixture
def emitted(
    stack: DeployedStack,
    sim: TwilioSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> dict[Series, set[tuple[str, ...]]]:
    """Every series the handlers printed: (name, dimension names) -> dimension value tuples."""
    system = RetrySystem(stack, sim, monkeypatch)
    capsys.readouterr()
    run_every_path(system, stack, monkeypatch)
    series: dict[Series, set[tuple[str, ...]]] = {}
    for name, dimensions, _ in emitted_metrics(capsys.readouterr().out):
        key = (name, frozenset(dimensions))
        series.setdefault(key, set()).add(tuple(v for _, v in sorted(dimensions.items())))
    return series


def alarm_series(sam: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(alarm, metric name, dimensions) of every alarm metric in our namespace."""
    for name, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        if "MetricName" in props:
            stats.append(props)
        for metric in stats:
            if metric["Namespace"] == NAMESPACE:
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                yield name, metric["MetricName"], dims


def dashboard_series(sam: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    body = json.loads(sam["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    for widget in body["widgets"]:
        for row in widget["properties"]["metrics"]:
            values = [v for v in row if isinstance(v, str)]
            if values and values[0] == NAMESPACE:
                yield values[1], dict(zip(values[2::2], values[3::2], strict=True))


def test_every_alarm_watches_an_emitted_metric_with_its_exact_dimensions(
    emitted: dict[Series, set[tuple[str, ...]]],
) -> None:
    sam = load_template()
    watched = list(alarm_series(sam))
    assert len({alarm for alarm, _, _ in watched}) >= 7
    for alarm, metric, dimensions in watched:
        assert (metric, frozenset(dimensions)) in emitted, (alarm, metric, sorted(dimensions))
        assert dimensions["service"] == {"Ref": "AWS::StackName"}, alarm
        # and a literal value it names (Receipts by change=new) is one the handlers printed
        names = sorted(dimensions)
        for printed in emitted[(metric, frozenset(dimensions))]:
            if all(
                isinstance(dimensions[n], dict) or dimensions[n] == v
                for n, v in zip(names, printed, strict=True)
            ):
                break
        else:
            raise AssertionError((alarm, metric, dimensions, "value never printed"))


def test_every_dashboard_series_is_emitted_with_a_value_it_names(
    emitted: dict[Series, set[tuple[str, ...]]],
) -> None:
    for metric, dimensions in dashboard_series(load_template()):
        key = (metric, frozenset(dimensions))
        assert key in emitted, (metric, dimensions)
        extra = {k: v for k, v in dimensions.items() if k != "service"}
        if extra:  # a value the code can emit: status, error class
            [(name, value)] = extra.items()
            from redeliver import observability
            from redeliver.domain.receipts import Change

            allowed = {
                "change": {change.value for change in Change},
                "status": {*observability.KNOWN_STATUSES, "other"},
                "error_class": {*observability.ERROR_CLASSES.values(), "other", "none"},
            }
            assert value in allowed[name], (metric, name, value)


def test_the_service_dimension_is_the_stack_name_in_code_and_alarms() -> None:
    sam = load_template()
    variables = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


def test_metric_math_is_well_formed_and_thresholds_are_parameters() -> None:
    sam = load_template()
    parameters = set(sam["Parameters"])
    for name, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert len(props["AlarmDescription"]) > 80, name  # says what it means and what to do
        threshold = props["Threshold"]
        assert threshold == 1 or threshold.get("Ref") in parameters, name
        if "Metrics" not in props:
            continue
        ids = {m["Id"] for m in props["Metrics"]}
        returned = [m for m in props["Metrics"] if m["ReturnData"]]
        assert len(returned) == 1, name
        expression = returned[0]["Expression"]
        expression = expression["Fn::Sub"] if isinstance(expression, dict) else expression
        used = set(re.findall(r"\b[a-z][a-z0-9_]*\b", re.sub(r"\$\{[^}]+\}", "", expression)))
        assert used - {"if"} <= ids, (name, used - ids)
        for placeholder in re.findall(r"\$\{([^}]+)\}", expression):
            assert placeholder in parameters, (name, placeholder)
        assert all(ident[0].islower() for ident in ids), name  # CloudWatch requires it


# -- alarms on AWS's own metrics: our resources, metrics those services publish ------------------

# What each namespace publishes for the kind of resource we watch there. An HTTP API's are `4xx`
# and `5xx` (a REST API's `4XXError` would name a metric that never arrives: an alarm never firing).
AWS_METRICS = {
    "AWS/ApiGateway": {"4xx", "5xx", "Count", "Latency", "IntegrationLatency", "DataProcessed"},
    "AWS/Lambda": {"Errors", "Throttles", "Duration", "Invocations", "ConcurrentExecutions"},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"},
    "AWS/EventBridge/Pipes": {"ExecutionFailed", "TargetStageFailed"},
}


def alarm_metrics(sam: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(alarm, metric) of every metric every alarm reads, in any namespace."""
    for name, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        for m in props.get("Metrics", []):
            if "MetricStat" in m:
                yield name, m["MetricStat"]["Metric"]
        if "MetricName" in props:
            yield name, props


def test_every_alarm_on_an_aws_metric_watches_one_of_our_resources() -> None:
    sam = load_template()
    resources = sam["Resources"]
    # SAM gives an HttpApi without StageName the $default stage: the Stage dimension's value.
    stage = resources["WebhookApi"]["Properties"].get("StageName", "$default")
    watched = set()
    for alarm, metric in alarm_metrics(sam):
        namespace = metric["Namespace"]
        if namespace == NAMESPACE:
            continue
        assert metric["MetricName"] in AWS_METRICS[namespace], (alarm, metric["MetricName"])
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        if namespace == "AWS/ApiGateway":
            assert dims.pop("ApiId") == {"Ref": "WebhookApi"}, alarm
            assert dims.pop("Stage", stage) == stage, alarm
            assert dims == {}, alarm
        elif namespace == "AWS/Lambda":
            [(key, value)] = dims.items()
            assert key == "FunctionName", alarm
            assert resources[value["Ref"]]["Type"] == "AWS::Serverless::Function", alarm
        elif namespace == "AWS/EventBridge/Pipes":
            [(key, value)] = dims.items()
            assert key == "PipeName", alarm
            assert resources[value["Ref"]]["Type"] == "AWS::Pipes::Pipe", alarm
        else:
            [(key, value)] = dims.items()
            assert key == "QueueName", alarm
            [queue, attribute] = value["Fn::GetAtt"]
            assert (resources[queue]["Type"], attribute) == ("AWS::SQS::Queue", "QueueName")
        watched.add(namespace)
    assert watched == set(AWS_METRICS)


def upstream_rejections(sam: dict[str, Any]) -> tuple[str, set[str]]:
    """The alarm on the API's 4xx: its name, and the metrics of ours it subtracts from them."""
    [(alarm, props)] = [
        (name, r["Properties"])
        for name, r in sam["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and any(
            m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "4xx"
            for m in r["Properties"].get("Metrics", [])
        )
    ]
    stats = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
    [api] = [i for i, stat in stats.items() if stat["Metric"]["Namespace"] == "AWS/ApiGateway"]
    ours = [i for i in stats if i != api]
    [returned] = [m for m in props["Metrics"] if m["ReturnData"]]
    # The API's 4xx less each of ours, once; missing data (no 4xx at all) is zero, not a gap.
    assert returned["Expression"] == " - ".join(f"FILL({i}, 0)" for i in [api, *ours]), alarm
    assert {stats[i]["Period"] for i in stats} == {60}, alarm
    assert {stats[i]["Stat"] for i in stats} == {"Sum"}, alarm
    assert props["Threshold"] == 1, alarm
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", alarm
    return alarm, {stats[i]["Metric"]["MetricName"] for i in ours}


def test_webhooks_rejected_before_the_function_are_alarmed_less_every_4xx_it_answers(
    ingest: ModuleType, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stage throttle's 429 never reaches the function, so only the API's own 4xx count shows
    it. The alarm subtracts the 4xx our function answers; each such answer must therefore count
    exactly one of the metrics it subtracts, and no other answer any."""
    alarm, subtracted = upstream_rejections(load_template())
    token = TEST_AUTH_TOKEN
    undecodable = http_api_event(receipt_fields(), token=token)
    undecodable["body"] = "%%% not base64 %%%"
    missing = receipt_fields()
    del missing["Status"]
    oversize = {**receipt_fields(), "Body": "x" * 20_000}
    cases: dict[str, dict[str, Any]] = {
        "sent": http_api_event(receipt_fields("sent"), token=token),
        "failure": http_api_event(
            receipt_fields("failed", message="f", error_code=30005), token=token
        ),
        "another event type": http_api_event(
            {**receipt_fields(message="e"), "EventType": "onMessageAdded"}, token=token
        ),
        "unknown status": http_api_event(receipt_fields("queued", message="q"), token=token),
        "forged": http_api_event(receipt_fields(), token="forged"),
        "unsigned": http_api_event(receipt_fields(), token=None),
        "undecodable": undecodable,
        "missing field": http_api_event(missing, token=token),
        "oversize": http_api_event(oversize, token=token),
        "unrepresentable date": http_api_event(
            receipt_fields(message="d", updated="9999-12-31T23:59:59-01:00"), token=token
        ),
    }
    answered = {}
    for case, event in [*cases.items(), ("table gone", cases["sent"])]:
        if case == "table gone":  # and the spill queue too, else the receipt is spilled: 200
            boto3.client("dynamodb").delete_table(TableName=stack.outputs["ReceiptsTableName"])
            boto3.client("sqs").delete_queue(QueueUrl=stack.outputs["SpillQueueUrl"])
        capsys.readouterr()
        status = invoke(ingest, event)["statusCode"]
        counted = [n for n in metric_names(capsys.readouterr().out) if n in subtracted]
        expected = 1 if 400 <= status < 500 else 0
        assert len(counted) == expected, (alarm, case, status, counted)
        answered[case] = status
    assert {answered["forged"], answered["missing field"]} == {403, 400}  # both kinds were seen
    assert answered["table gone"] == 500
