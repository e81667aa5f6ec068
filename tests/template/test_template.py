"""template.yaml: linted, built, and holding the contract DESIGN.md gives it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redeliver.retry import record_budget_seconds
from redeliver.settings import Settings
from redeliver.store import PENDING_INDEX
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


def test_every_function_is_python313_on_arm64_with_the_layer(sam: dict[str, Any]) -> None:
    defaults = sam["Globals"]["Function"]
    for name, function in resources_of(sam, "AWS::Serverless::Function").items():
        props = {**defaults, **function["Properties"]}
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Layers"] == [{"Ref": "CommonLayer"}], name


def test_layer_is_built_for_the_functions_runtime_and_architecture(sam: dict[str, Any]) -> None:
    layer = sam["Resources"]["CommonLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
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
        if e["Type"] == "SQS"
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
    # A claim older than any run of the function belongs to a dead worker (redeliver.retry);
    # a job waiting out the queue's visibility finds it stale.
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
    [index] = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == PENDING_INDEX
    assert index["KeySchema"] == [{"AttributeName": "retry_pending_at", "KeyType": "HASH"}]
    assert table["DeletionPolicy"] == "Retain"


def test_queues_are_encrypted_and_failures_end_in_a_two_week_dlq(sam: dict[str, Any]) -> None:
    queue = sam["Resources"]["RetryQueue"]["Properties"]
    dlq = sam["Resources"]["RetryDLQ"]["Properties"]
    assert queue["SqsManagedSseEnabled"]
    assert dlq["SqsManagedSseEnabled"]
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
    assert (layer / "redeliver" / "receipts.py").is_file()
    assert (layer / "twilio").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    native = list(layer.rglob("*.so"))
    assert native, "expected native extensions (aiohttp, ...) in the layer"
    machines = {_elf_machine(path) for path in native}
    assert machines == {"aarch64"}, {p.name: _elf_machine(p) for p in native}
    for function in ("IngestFunction", "RetryFunction", "SweepFunction"):
        assert (build / function / "app.py").is_file()


def _elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    machine = int.from_bytes(header[18:20], "little")
    return {0xB7: "aarch64", 0x3E: "x86_64"}.get(machine, hex(machine))
