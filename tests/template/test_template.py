"""template.yaml: linted, built, and holding the contract DESIGN.md gives it."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.shared.constants import LAMBDA_ADVANCED_LOGGING_LEVELS

from redeliver.adapters.dynamodb import outbox, receipts, reconciliation, table
from redeliver.settings import Settings
from redeliver.usecases.retry.outcomes import record_budget_seconds
from tools.stack import ROOT, TEMPLATE, load_template

BIN = Path(sys.executable).parent
SAM = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_template()


def resources_of(sam: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in sam["Resources"].items() if r["Type"] == kind}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=SAM, capture_output=True, text=True, timeout=900, check=False
    )


# -- linters ------------------------------------------------------------------------------------


def test_sam_validate_lint_is_clean() -> None:
    result = run(str(BIN / "sam"), "validate", "--lint", "--template", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_is_clean() -> None:
    result = run(str(BIN / "cfn-lint"), str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


# -- the contract (DESIGN.md) ----------------------------------------------------------------


def test_contract_parameters_exist_with_their_fixed_names(sam: dict[str, Any]) -> None:
    parameters = sam["Parameters"]
    assert {"TwilioSecretArn", "RetryPolicy", "WebhookBaseUrl"} <= set(parameters)
    assert parameters["WebhookBaseUrl"]["Default"] == ""
    assert parameters["RetryPolicy"]["Default"] == ""  # the built-in default
    assert "Default" not in parameters["TwilioSecretArn"]  # no secret in the template, ever


def test_the_webhook_url_output_is_the_url_ingest_checks_signatures_against(
    sam: dict[str, Any],
) -> None:
    """With WebhookBaseUrl set (a custom domain), ingest checks signatures against it plus the
    path: the WebhookUrl output, which configure-webhook gives Twilio, must be that URL, or every
    webhook is refused. Without it, the execute-api URL."""
    [event] = sam["Resources"]["IngestFunction"]["Properties"]["Events"].values()
    path = event["Properties"]["Path"]
    assert sam["Conditions"]["HasWebhookBaseUrl"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookBaseUrl"}, ""]}]
    }
    assert sam["Outputs"]["WebhookUrl"]["Value"] == {
        "Fn::If": [
            "HasWebhookBaseUrl",
            {"Fn::Sub": "${WebhookBaseUrl}" + path},
            {
                "Fn::Sub": "https://${WebhookApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
                + path
            },
        ]
    }
    # `${WebhookBaseUrl}/path` is ingest's `base.rstrip("/") + path` only without a trailing /
    pattern = re.compile(sam["Parameters"]["WebhookBaseUrl"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("https://hooks.example.com")
    assert pattern.fullmatch("https://hooks.example.com/v1")
    assert not pattern.fullmatch("https://hooks.example.com/v1/")
    assert not pattern.fullmatch("https://hooks.example.com/")
    assert not pattern.fullmatch("http://hooks.example.com")
    assert not pattern.fullmatch("https://hooks.example.com/v1?x=1")


def test_every_function_is_python313_on_arm64_with_the_layer(sam: dict[str, Any]) -> None:
    defaults = sam["Globals"]["Function"]
    for name, function in resources_of(sam, "AWS::Serverless::Function").items():
        props = {**defaults, **function["Properties"]}
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Layers"] == [{"Ref": "CommonLayer"}], name


def test_layer_is_built_for_the_functions_runtime_and_architecture(sam: dict[str, Any]) -> None:
    layer = sam["Resources"]["CommonLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]


def test_ingest_is_the_only_function_on_the_http_api(sam: dict[str, Any]) -> None:
    http = {
        name
        for name, f in resources_of(sam, "AWS::Serverless::Function").items()
        for e in (f["Properties"].get("Events") or {}).values()
        if e["Type"] == "HttpApi"
    }
    assert http == {"IngestFunction"}
    [event] = sam["Resources"]["IngestFunction"]["Properties"]["Events"].values()
    assert event["Properties"] == {
        "ApiId": {"Ref": "WebhookApi"},
        "Method": "POST",
        "Path": "/twilio/delivery-receipts",
        "PayloadFormatVersion": "2.0",
    }


def test_retry_is_the_only_function_on_the_retry_queue(sam: dict[str, Any]) -> None:
    sqs = {
        name: e
        for name, f in resources_of(sam, "AWS::Serverless::Function").items()
        for e in (f["Properties"].get("Events") or {}).values()
        if e["Type"] == "SQS" and e["Properties"]["Queue"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    }
    assert list(sqs) == ["RetryFunction"]
    props = sqs["RetryFunction"]["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == {"Ref": "RetryBatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == {"Ref": "RetryBatchWindowSeconds"}
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RetryMaxConcurrency"}}


def test_retry_timings_follow_from_the_function_timeout_in_one_place(sam: dict[str, Any]) -> None:
    """The timeout is a Mappings value read by both the function's Timeout and its environment;
    the queue's visibility, the stale-claim age and the per-record budget follow from it."""
    function = sam["Resources"]["RetryFunction"]["Properties"]
    environment = function["Environment"]["Variables"]
    in_one_place = {"Fn::FindInMap": ["RetryTiming", "FunctionTimeout", "Seconds"]}
    assert function["Timeout"] == environment["RETRY_TIMEOUT_SECONDS"] == in_one_place
    timeout = int(sam["Mappings"]["RetryTiming"]["FunctionTimeout"]["Seconds"])
    visibility = sam["Resources"]["RetryQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout  # Lambda's advice for an SQS event source
    settings = Settings.from_env(
        {
            "TABLE_NAME": "t",
            "RETRY_QUEUE_URL": "q",
            "TWILIO_SECRET_ARN": "s",
            "RETRY_TIMEOUT_SECONDS": str(timeout),
            "TWILIO_TIMEOUT_SECONDS": environment["TWILIO_TIMEOUT_SECONDS"],
        }
    )
    # A claim older than any run of the function belongs to a dead worker
    # (redeliver.usecases.retry.claims); a job waiting out the queue's visibility finds it stale.
    assert timeout < settings.claim_stale_seconds < visibility
    # A record starts only with its worst case left: at least one fits in a run.
    assert record_budget_seconds(settings.twilio_timeout_seconds) < timeout
    assert environment["RETRY_POLICY"] == {"Ref": "RetryPolicy"}


def test_retry_may_return_jobs_to_its_own_queue_early(sam: dict[str, Any]) -> None:
    statements = sam["Resources"]["RetryFunction"]["Properties"]["Policies"][0]["Statement"]
    [early] = [s for s in statements if s["Action"] == "sqs:ChangeMessageVisibility"]
    assert early["Resource"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}


def test_ingest_answers_inside_twilios_five_seconds(sam: dict[str, Any]) -> None:
    assert sam["Resources"]["IngestFunction"]["Properties"]["Timeout"] < 5


def test_api_uses_the_default_stage_with_throttling_and_access_logs(sam: dict[str, Any]) -> None:
    api = sam["Resources"]["WebhookApi"]["Properties"]
    assert "StageName" not in api  # $default: the signed URL has no stage segment
    route = api["RouteSettings"]["POST /twilio/delivery-receipts"]
    assert route == {
        "ThrottlingRateLimit": {"Ref": "WebhookThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "WebhookThrottleBurst"},
    }
    assert api["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["WebhookAccessLogs", "Arn"]
    }


def test_table_matches_what_the_store_writes(sam: dict[str, Any]) -> None:
    table = sam["Resources"]["ReceiptsTable"]
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_the_outbox_index_is_sharded_and_projected_as_the_store_queries_it(
    sam: dict[str, Any],
) -> None:
    """Keyed by shard then time (no hot epoch-second partition), INCLUDE only."""
    props = sam["Resources"]["ReceiptsTable"]["Properties"]
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {table.PENDING_INDEX, table.STUCK_INDEX}
    index = indexes[table.PENDING_INDEX]
    assert index["KeySchema"] == [
        {"AttributeName": table.PENDING_SHARD, "KeyType": "HASH"},
        {"AttributeName": table.PENDING_AT, "KeyType": "RANGE"},
    ]
    types = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
    assert types[table.PENDING_SHARD] == "S"  # the store writes str(shard)
    assert types[table.PENDING_AT] == "N"
    projection = index["Projection"]
    assert projection["ProjectionType"] == "INCLUDE"
    included = projection["NonKeyAttributes"]
    assert len(included) == len(set(included))
    assert set(included) == set(outbox.PENDING_PROJECTION)


def test_the_reconciliation_index_is_sharded_and_projected_as_the_store_queries_it(
    sam: dict[str, Any],
) -> None:
    """Sparse (only `sent` receipts carry its sort key), sharded, INCLUDE only what the reconciler
    reads; its keys typed as the store writes them."""
    props = sam["Resources"]["ReceiptsTable"]["Properties"]
    [index] = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == table.STUCK_INDEX]
    assert index["KeySchema"] == [
        {"AttributeName": table.STUCK_SHARD, "KeyType": "HASH"},
        {"AttributeName": table.STUCK_SINCE, "KeyType": "RANGE"},
    ]
    types = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
    assert (types[table.STUCK_SHARD], types[table.STUCK_SINCE]) == ("S", "N")
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert set(index["Projection"]["NonKeyAttributes"]) == set(reconciliation.STUCK_PROJECTION)
    assert not any(k.startswith(receipts.HISTORY_PREFIX) for k in reconciliation.STUCK_PROJECTION)


def test_the_reconciler_is_scheduled_off_with_zero_and_may_query_only_its_index(
    sam: dict[str, Any],
) -> None:
    parameters = sam["Parameters"]
    assert (
        parameters["ReconcileAfterMinutes"]["Default"],
        parameters["ReconcileEveryMinutes"]["Default"],
    ) == (30, 10)
    assert parameters["ReconcileAfterMinutes"]["MinValue"] == 0
    assert sam["Conditions"]["ReconcileOn"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReconcileAfterMinutes"}, 0]}]
    }
    function = sam["Resources"]["ReconcileFunction"]
    assert function["Condition"] == "ReconcileOn"
    for name, resource in sam["Resources"].items():  # nothing left pointing at it when off
        if "ReconcileFunction" in str(resource) and name != "ReconcileFunction":
            assert resource.get("Condition") == "ReconcileOn" or "Fn::If" in str(resource), name
    [event] = function["Properties"]["Events"].values()
    assert event["Type"] == "Schedule"
    schedule = event["Properties"]["Schedule"]["Fn::If"]
    assert schedule[0] == "ReconcileEveryMinute"
    assert schedule[1] == "rate(1 minute)"  # EventBridge refuses "rate(1 minutes)"
    assert schedule[2] == {"Fn::Sub": "rate(${ReconcileEveryMinutes} minutes)"}
    variables = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["RECONCILE_AFTER_MINUTES"] == {"Ref": "ReconcileAfterMinutes"}
    [query, tracked] = [
        s
        for policy in function["Properties"]["Policies"]
        for s in policy.get("Statement", [])
        if s.get("Action") == "dynamodb:Query"
    ]
    assert query["Resource"] == {"Fn::Sub": f"${{ReceiptsTable.Arn}}/index/{table.STUCK_INDEX}"}
    # TrackMessages: a tracked message's own partition (has it a receipt?), message partitions
    # only. moto evaluates no IAM policy (the handlers' calls succeed whatever it says), so the
    # statement itself is what is checked here.
    assert tracked["Resource"] == {"Fn::GetAtt": ["ReceiptsTable", "Arn"]}
    assert tracked["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{table.MESSAGE_PREFIX}*"]}
    }


def test_track_messages_is_off_by_default_and_only_on_with_reconciliation(
    sam: dict[str, Any],
) -> None:
    parameter = sam["Parameters"]["TrackMessages"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["true", "false"])
    assert sam["Conditions"]["TrackMessagesOn"] == {
        "Fn::And": [
            {"Condition": "ReconcileOn"},
            {"Fn::Equals": [{"Ref": "TrackMessages"}, "true"]},
        ]
    }
    variables = sam["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TRACK_MESSAGES"] == {"Fn::If": ["TrackMessagesOn", "true", "false"]}
    for name, resource in sam["Resources"].items():  # ingest's alone
        if name != "IngestFunction":
            assert "TRACK_MESSAGES" not in str(resource), name


def test_ingest_may_spill_to_a_queue_with_its_own_dlq_replayed_by_one_function(
    sam: dict[str, Any],
) -> None:
    resources = sam["Resources"]
    ingest = resources["IngestFunction"]["Properties"]
    assert ingest["Environment"]["Variables"]["SPILL_QUEUE_URL"] == {"Ref": "SpillQueue"}
    assert {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["SpillQueue", "QueueName"]}}} in (
        ingest["Policies"]
    )
    spill = resources["SpillQueue"]["Properties"]
    assert spill["KmsMasterKeyId"] == "alias/aws/sqs"  # every queue: tests/template/test_checkov.py
    assert spill["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["SpillDLQ", "Arn"]}
    assert resources["SpillDLQ"]["Properties"]["MessageRetentionPeriod"] == 14 * 86_400
    consumers = [
        name
        for name, f in resources_of(sam, "AWS::Serverless::Function").items()
        for e in (f["Properties"].get("Events") or {}).values()
        if e["Type"] == "SQS" and e["Properties"]["Queue"] == {"Fn::GetAtt": ["SpillQueue", "Arn"]}
    ]
    assert consumers == ["SpillFunction"]


def test_the_index_projects_everything_the_sweeper_rebuilds_a_job_from() -> None:
    """event_from_item may read the table key and PENDING_PROJECTION, nothing else: a field
    added to it must be added to the projection (and so to the template, by the test above)."""
    read: set[str] = set()

    class Item(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> Any:
            read.add(key)
            return super().__getitem__(key)

    item = Item(
        pk={"S": "MSG#IM" + "0" * 32},
        sk={"S": "RCPT#DY" + "0" * 32},
        status={"S": "undelivered"},
        order_key={"N": "17954388000000006"},
        error_code={"N": "30003"},
        date_updated={"S": "2026-11-27T10:00:00.000Z"},
        date_created={"S": "2026-11-27T09:59:58.000Z"},
        conversation_sid={"S": "CH" + "0" * 32},
        account_sid={"S": "AC" + "0" * 32},
        chat_service_sid={"S": "IS" + "0" * 32},
        participant_sid={"S": "MB" + "0" * 32},
        channel_message_sid={"S": "SM" + "0" * 32},
        hist_undelivered={"M": {"at": {"S": "2026-11-27T10:00:00.000Z"}}},
        expires_at={"N": "1800000000"},
        retry_pending_at={"N": "1800000000"},
        pending_shard={"S": "3"},
    )
    receipts.event_from_item(item)
    assert read <= {"pk", "sk", *outbox.PENDING_PROJECTION}, read - set(outbox.PENDING_PROJECTION)


def test_the_sweeper_may_query_the_outbox_index_and_nothing_more(sam: dict[str, Any]) -> None:
    [statement] = [
        s
        for policy in sam["Resources"]["SweepFunction"]["Properties"]["Policies"]
        for s in policy.get("Statement", [])
        if str(s["Action"]).startswith("dynamodb:") and s["Sid"] == "FindPending"
    ]
    assert statement["Action"] == "dynamodb:Query"  # never a Scan of the table or index
    index_arn = f"${{ReceiptsTable.Arn}}/index/{table.PENDING_INDEX}"
    assert statement["Resource"] == {"Fn::Sub": index_arn}


def test_queues_are_encrypted_and_failures_end_in_a_two_week_dlq(sam: dict[str, Any]) -> None:
    queue = sam["Resources"]["RetryQueue"]["Properties"]
    dlq = sam["Resources"]["RetryDLQ"]["Properties"]
    assert queue["KmsMasterKeyId"] == dlq["KmsMasterKeyId"] == "alias/aws/sqs"
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["RetryDLQ", "Arn"]},
        "maxReceiveCount": {"Ref": "RetryMaxReceiveCount"},
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 86_400


def test_every_function_has_a_log_group_with_retention(sam: dict[str, Any]) -> None:
    groups = resources_of(sam, "AWS::Logs::LogGroup").values()
    named = {g["Properties"].get("LogGroupName", {}).get("Fn::Sub") for g in groups}
    for name in resources_of(sam, "AWS::Serverless::Function"):
        assert f"/aws/lambda/${{{name}}}" in named, name
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups)


def test_iam_statements_name_their_resources(sam: dict[str, Any]) -> None:
    for name, function in resources_of(sam, "AWS::Serverless::Function").items():
        for policy in function["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []):
                assert statement["Resource"] != "*", name
                assert "*" not in str(statement["Action"]), name
    for name, policy in resources_of(sam, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Resource"] != "*", name
            assert "*" not in str(statement["Action"]), name


# -- configuration footguns --------------------------------------------------------------------

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _bound(sam: dict[str, Any], value: Any) -> list[int]:
    """Every value a literal or a !Ref'd Number parameter may take, at its extremes."""
    if not isinstance(value, dict):
        return [int(value)]
    parameter = sam["Parameters"][value["Ref"]]
    if "AllowedValues" in parameter:
        return [int(v) for v in parameter["AllowedValues"]]
    assert "MaxValue" in parameter, f"{value['Ref']} has no MaxValue"
    return [int(parameter["MaxValue"])]


def test_every_alarm_window_fits_cloudwatch_for_every_allowed_parameter(
    sam: dict[str, Any],
) -> None:
    """PutMetricAlarm refuses Period x EvaluationPeriods over one day (periods under an hour)
    or seven days: a parameter that allows more fails the deploy, late and obscurely."""
    for name, alarm in resources_of(sam, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        periods = (
            [
                p
                for m in props["Metrics"]
                if "MetricStat" in m
                for p in _bound(sam, m["MetricStat"]["Period"])
            ]
            if "Metrics" in props
            else _bound(sam, props["Period"])
        )
        evaluations = max(_bound(sam, props["EvaluationPeriods"]))
        for period in periods:
            limit = 86_400 if period < 3_600 else 7 * 86_400
            assert period * evaluations <= limit, (name, period, evaluations)
        if "DatapointsToAlarm" in props:
            assert props["DatapointsToAlarm"] == props["EvaluationPeriods"], name


def test_no_receipts_minutes_is_bounded_by_one_day_of_one_minute_periods(
    sam: dict[str, Any],
) -> None:
    parameter = sam["Parameters"]["NoReceiptsMinutes"]
    assert parameter["MaxValue"] == 1440
    assert sam["Resources"]["NoReceiptsAlarm"]["Properties"]["Period"] == 60


def test_the_secret_key_parameter_is_optional_and_takes_only_a_key_arn(
    sam: dict[str, Any],
) -> None:
    parameter = sam["Parameters"]["TwilioSecretKmsKeyArn"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch(KMS_KEY)
    assert pattern.fullmatch(KMS_KEY.replace("arn:aws:", "arn:aws-us-gov:"))
    assert not pattern.fullmatch("arn:aws:kms:us-east-1:123456789012:alias/twilio")
    assert not pattern.fullmatch("1234abcd-12ab-34cd-56ef-1234567890ab")
    assert sam["Conditions"]["HasTwilioSecretKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TwilioSecretKmsKeyArn"}, ""]}]
    }


def test_the_secret_key_grant_is_conditional_and_for_the_secrets_readers_only(
    sam: dict[str, Any],
) -> None:
    readers = {
        name
        for name, f in resources_of(sam, "AWS::Serverless::Function").items()
        if any("AWSSecretsManagerGetSecretValuePolicy" in p for p in f["Properties"]["Policies"])
    }
    assert readers == {"IngestFunction", "RetryFunction", "ReconcileFunction"}
    grants = {
        name: r
        for name, r in sam["Resources"].items()
        if "TwilioSecretKmsKeyArn" in str(r)
        or "kms:Decrypt" in str(r.get("Properties", {}).get("Policies"))
    }
    [grant] = grants.values()
    assert grant["Type"] == "AWS::IAM::Policy"
    assert grant["Condition"] == "HasTwilioSecretKmsKey"
    roles = grant["Properties"]["Roles"]
    # A conditional function's role exists only with it (ReconcileFunction: ReconcileOn).
    conditional = {
        f: sam["Resources"][f]["Condition"] for f in readers if "Condition" in sam["Resources"][f]
    }
    expected = [
        {"Fn::If": [conditional[f], {"Ref": f"{f}Role"}, {"Ref": "AWS::NoValue"}]}
        if f in conditional
        else {"Ref": f"{f}Role"}
        for f in sorted(readers)
    ]
    assert sorted(roles, key=str) == sorted(expected, key=str)
    [statement] = grant["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "kms:Decrypt"
    assert statement["Resource"] == {"Ref": "TwilioSecretKmsKeyArn"}
    assert statement["Condition"] == {
        "StringEquals": {
            "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.${AWS::URLSuffix}"}
        }
    }


@pytest.mark.slow
@pytest.mark.parametrize("key", ["", KMS_KEY])
def test_deployed_roles_may_decrypt_with_the_secret_key_only_when_it_is_set(key: str) -> None:
    """The SAM transform and CloudFormation's condition, end to end (moto's IAM)."""
    import boto3
    from moto import mock_aws

    from tools.stack import deploy

    with mock_aws():
        stack = deploy("kms", {"TwilioSecretKmsKeyArn": key} if key else {})
        iam = boto3.client("iam")
        for function in ("IngestFunction", "RetryFunction", "SweepFunction"):
            role = stack.physical_ids[f"{function}Role"]
            documents = [
                str(iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"])
                for n in iam.list_role_policies(RoleName=role)["PolicyNames"]
            ]
            decrypt = [d for d in documents if "kms:" in d]
            if key and function != "SweepFunction":
                [document] = decrypt
                assert KMS_KEY in document
                assert "secretsmanager.us-east-1.amazonaws.com" in document
            else:
                assert decrypt == [], function


def test_no_secret_or_phone_number_in_the_template() -> None:
    text = TEMPLATE.read_text().lower()
    assert "auth_token:" not in text
    assert "+1" not in text


# -- sam build --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sam_build_makes_an_arm64_layer(tmp_path: Path) -> None:
    """`sam build` as a deploy runs it; the layer's native code must be aarch64 (Graviton)."""
    assert shutil.which("python3.13", path=SAM["PATH"]), "sam build needs python3.13 on PATH"
    build = tmp_path / "build"
    result = run(
        str(BIN / "sam"),
        "build",
        "--template",
        str(TEMPLATE),
        "--build-dir",
        str(build),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    layer = build / "CommonLayer" / "python"
    assert (layer / "redeliver" / "domain" / "receipts.py").is_file()
    assert (layer / "twilio").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    native = list(layer.rglob("*.so"))
    assert native, "expected native extensions (aiohttp, ...) in the layer"
    machines = {_elf_machine(path) for path in native}
    assert machines == {"aarch64"}, {p.name: _elf_machine(p) for p in native}
    for function in ("IngestFunction", "RetryFunction", "SweepFunction"):
        assert (build / function / "app.py").is_file()
    # Bytecode for every module, for Lambda's Python, valid however the files' mtimes come out:
    # /opt is read-only, and without it every cold start compiles the layer again.
    sources = list(layer.rglob("*.py"))
    assert len(sources) > 500
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        assert compiled.is_file(), source
        header = compiled.read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        assert int.from_bytes(header[4:8], "little") == 0b01, source  # hash-based, unchecked


def _elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    machine = int.from_bytes(header[18:20], "little")
    return {0xB7: "aarch64", 0x3E: "x86_64"}.get(machine, hex(machine))


# -- the webhook throttle ------------------------------------------------------------------------

RECEIPTS_PER_MESSAGE = 3  # sent, delivered, read


def _docs() -> str:
    """README.md and docs/*.md, where the parameters and their sizing are told."""
    return "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])


def test_the_webhook_throttle_takes_the_bulk_send_the_readme_promises(sam: dict[str, Any]) -> None:
    """A 429 from the stage throttle is a receipt lost: the default is sized, and said."""
    rate = int(sam["Parameters"]["WebhookThrottleRate"]["Default"])
    burst = int(sam["Parameters"]["WebhookThrottleBurst"]["Default"])
    readme = _docs()
    assert f"| `WebhookThrottleRate` / `WebhookThrottleBurst` | {rate} / {burst} |" in readme
    [promised] = re.findall(r"bulk send of\s+about (\d+) messages per second", readme)
    assert RECEIPTS_PER_MESSAGE * int(promised) <= rate < RECEIPTS_PER_MESSAGE * (int(promised) + 5)
    assert f"{rate:,}".replace(",", " ") in readme  # the figure the sizing is worked from
    assert burst >= 2 * rate  # a batch's sent and delivered receipts arrive together
    # The account's HTTP API quota per Region caps a stage's throttle anyway.
    assert rate <= 10_000
    assert burst <= 5_000


def test_every_function_logs_json_at_levels_the_stack_parameters_set(sam: dict[str, Any]) -> None:
    """Lambda's advanced logging controls, one source of truth for the level. The Logger obeys
    AWS_LAMBDA_LOG_LEVEL (set from ApplicationLogLevel) over POWERTOOLS_LOG_LEVEL, so the latter is
    not set; the system level defaults to WARN (no START/END/REPORT lines)."""
    defaults = sam["Globals"]["Function"]
    assert "POWERTOOLS_LOG_LEVEL" not in defaults["Environment"]["Variables"]
    for name, function in resources_of(sam, "AWS::Serverless::Function").items():
        props = {**defaults, **function["Properties"]}
        assert props["LoggingConfig"] == {
            "LogFormat": "JSON",
            "ApplicationLogLevel": {"Ref": "ApplicationLogLevel"},
            "SystemLogLevel": {"Ref": "SystemLogLevel"},
        }, name
        assert "POWERTOOLS_LOG_LEVEL" not in props.get("Environment", {}).get("Variables", {})
    parameters = sam["Parameters"]
    assert parameters["SystemLogLevel"]["Default"] == "WARN"
    assert set(parameters["SystemLogLevel"]["AllowedValues"]) == {"DEBUG", "INFO", "WARN"}
    assert parameters["ApplicationLogLevel"]["Default"] == "INFO"


def test_no_application_log_level_drops_the_metrics(sam: dict[str, Any]) -> None:
    """Lambda filters stdout JSON by its `level` key and takes a line without one (an EMF
    document) as INFO: a level above INFO would drop every metric, and silence every alarm."""
    for level in sam["Parameters"]["ApplicationLogLevel"]["AllowedValues"]:
        python_level = logging.getLevelName(LAMBDA_ADVANCED_LOGGING_LEVELS[level])
        assert python_level <= logging.INFO, level


def test_the_readme_lists_the_log_level_parameters(sam: dict[str, Any]) -> None:
    readme = _docs()
    for name in ("ApplicationLogLevel", "SystemLogLevel"):
        assert f"`{name}`" in readme, name
