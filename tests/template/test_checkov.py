"""checkov on template.yaml: no failed check, and no skip without its reason.

`make checkov` is the gate CI runs (`make test`); these tests keep the gate honest. A skip lives in
its resource's `Metadata: checkov: skip: [{id, comment}]`, so the reason stands beside what it
excuses: each must name a check checkov really ran on that resource (a typo, or a skip whose check
now passes, is a skip of nothing) and give a reason of that resource's own. What was fixed rather
than skipped is checked here too, so a later edit cannot quietly undo it.

checkov runs from its own venv (`.checkov-venv`, built by `make` from the hash-pinned
requirements-checkov.txt), or from `$CHECKOV`: beside requirements-dev.txt pip resolves it to an
old release, so it cannot live in the dev venv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.stack import ROOT, TEMPLATE, load_template

CHECK_ID = re.compile(r"CKV2?_AWS_\d+")
FUNCTION = "AWS::Serverless::Function"


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_template()


def skips_of(sam: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(resource, check id) -> the comment written beside the skip."""
    found: dict[tuple[str, str], str] = {}
    for name, resource in sam["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert set(skip) == {"id", "comment"}, (name, skip)
            assert (name, skip["id"]) not in found, f"{name} skips {skip['id']} twice"
            found[(name, skip["id"])] = skip["comment"]
    return found


def functions_of(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in sam["Resources"].items() if r["Type"] == FUNCTION}


# -- checkov itself ---------------------------------------------------------------------------


def checkov_binary() -> str:
    binary = os.environ.get("CHECKOV") or str(ROOT / ".checkov-venv" / "bin" / "checkov")
    if not Path(binary).is_file():
        pytest.fail(f"checkov not found at {binary}: `make .checkov-venv/.installed` builds it")
    return binary


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    command = [checkov_binary(), "-f", str(TEMPLATE), "--framework", "cloudformation"]
    command += ["--skip-download", "--output", "json"]  # offline: no guidelines download
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["check_type"] == "cloudformation", report
    assert result.returncode == (1 if report["results"]["failed_checks"] else 0), result.stderr
    return report


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [(c["check_id"], c["resource"]) for c in checkov_report["results"]["failed_checks"]]
    assert failed == []
    assert checkov_report["summary"]["passed"] > 0  # it really checked something


def test_every_skip_is_of_a_check_checkov_ran_on_that_resource(
    sam: dict[str, Any], checkov_report: dict[str, Any]
) -> None:
    skipped = {
        (c["resource"].split(".")[-1], c["check_id"])
        for c in checkov_report["results"]["skipped_checks"]
    }
    assert set(skips_of(sam)) == skipped


# -- the skips, read from the template ----------------------------------------------------------


def test_every_skip_names_a_check_id_and_gives_a_reason_of_its_own(sam: dict[str, Any]) -> None:
    skips = skips_of(sam)
    assert skips, "the template has no checkov skip: then this test should go"
    for (name, check), comment in skips.items():
        assert CHECK_ID.fullmatch(check), (name, check)
        assert isinstance(comment, str), (name, check)
        assert len(comment.split()) >= 15, f"{name} {check}: say why, not just that"
    # Specific to its resource: no reason is pasted onto two resources, and each one that
    # excuses a function or a log group names the function it speaks of.
    comments = list(skips.values())
    assert len(set(comments)) == len(comments), "a reason is copied between resources"
    for (name, check), comment in skips.items():
        if sam["Resources"][name]["Type"] == FUNCTION:
            assert name in comment, (name, check)
        log_group = sam["Resources"][name]["Properties"].get("LogGroupName")
        if log_group:
            [function] = re.findall(r"\$\{(\w+)\}", log_group["Fn::Sub"])
            assert function in comment, (name, check)


def test_skips_are_only_of_the_checks_that_do_not_apply_here(sam: dict[str, Any]) -> None:
    """The decisions, each argued beside its skip; anything new must be fixed or argued too."""
    by_check: dict[str, set[str]] = {}
    for name, check in skips_of(sam):
        by_check.setdefault(check, set()).add(name)
    functions = set(functions_of(sam))
    log_groups = {n for n, r in sam["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert by_check == {
        "CKV_AWS_115": {"IngestFunction"},  # reserved concurrency would cap webhooks: lost
        "CKV_AWS_116": functions,  # sync, SQS-driven (queue redrive) or scheduled: no async DLQ
        "CKV_AWS_117": functions,  # public endpoints and Twilio only: no VPC
        "CKV_AWS_173": functions,  # no secret in any variable (test below)
        "CKV_AWS_158": log_groups,  # encrypted by CloudWatch Logs; no secret or number logged
        "CKV_AWS_119": {"ReceiptsTable"},  # aws/dynamodb KMS key; SIDs and hashes only
    }


# -- what was fixed, not skipped -----------------------------------------------------------------


def test_every_queue_is_encrypted_with_sqs_aws_managed_kms_key(sam: dict[str, Any]) -> None:
    """alias/aws/sqs needs no key policy and no kms: permission for this account's roles; the
    hour's data-key reuse keeps KMS calls per sender, not per message."""
    queues = {n: r for n, r in sam["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    assert set(queues) == {"RetryQueue", "RetryDLQ", "SpillQueue", "SpillDLQ", "OutcomeEventsDLQ"}
    for name, queue in queues.items():
        props = queue["Properties"]
        assert props["KmsMasterKeyId"] == "alias/aws/sqs", name
        assert props["KmsDataKeyReusePeriodSeconds"] == 3600, name
        assert "SqsManagedSseEnabled" not in props, name  # one encryption per queue


def test_reserved_concurrency_where_it_is_a_safety_limit_and_never_on_ingest(
    sam: dict[str, Any],
) -> None:
    functions = functions_of(sam)
    reserved = {n: p.get("ReservedConcurrentExecutions") for n, p in functions.items()}
    # A throttled webhook is a receipt lost (Twilio does not resend): never cap ingest here.
    assert reserved.pop("IngestFunction") is None
    assert "ReservedConcurrentExecutions" not in sam["Globals"]["Function"]
    # SQS-driven: reserve exactly the event source's cap, so the poller is never throttled (a
    # throttled batch is a receive towards the DLQ) and never starved by the account.
    for name in ("RetryFunction", "SpillFunction"):
        [event] = functions[name]["Events"].values()
        assert event["Type"] == "SQS"
        assert reserved.pop(name) == event["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    assert functions["RetryFunction"]["ReservedConcurrentExecutions"] == {
        "Ref": "RetryMaxConcurrency"
    }
    # Scheduled singletons: one run at a time.
    assert reserved == {"SweepFunction": 1, "ReconcileFunction": 1}


SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY|PRIVATE", re.IGNORECASE)


def test_no_environment_variable_holds_a_secret(sam: dict[str, Any]) -> None:
    """What the CKV_AWS_173 skips claim: the only secret-named variable is the secret's ARN,
    whose parameter admits nothing but an ARN; every other value is a reference, a mapping or a
    short literal (no token-shaped strings)."""
    sources = {"Globals": sam["Globals"]["Function"]} | functions_of(sam)
    variables = {
        (where, name): value
        for where, props in sources.items()
        for name, value in (props.get("Environment") or {}).get("Variables", {}).items()
    }
    assert variables
    for (where, name), value in variables.items():
        if SECRETISH.search(name):
            assert (where, name) == ("Globals", "TWILIO_SECRET_ARN")
            assert value == {"Ref": "TwilioSecretArn"}
            assert sam["Parameters"]["TwilioSecretArn"]["AllowedPattern"].startswith("^arn:")
        elif isinstance(value, str):
            assert len(value) <= 40, (where, name)
            assert not re.search(r"[0-9a-f]{24,}", value), (where, name)
        else:
            assert isinstance(value, dict), (where, name)
            assert len(value) == 1, (where, name)
            [function] = value
            if function == "Fn::If":  # a condition picking between short literals
                _, *branches = value[function]
                assert all(isinstance(b, str) and len(b) <= 40 for b in branches), (where, name)
                continue
            assert function in {"Ref", "Fn::FindInMap", "Fn::GetAtt", "Fn::Sub"}, (where, name)


# -- CI: `make test` runs the gate, from a hash-pinned lock -----------------------------------


def test_make_test_runs_checkov_from_its_own_venv_and_clean_removes_it() -> None:
    def dry_run(target: str) -> str:
        result = subprocess.run(
            ["make", "-n", "--always-make", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    test = dry_run("test")
    gate = ".checkov-venv/bin/checkov -f template.yaml --framework cloudformation --skip-download"
    assert gate in test
    assert "--require-hashes --no-deps -r requirements-checkov.txt" in test
    assert test.index(gate) < test.index("-m pytest")  # a failed check stops the build first
    assert ".checkov-venv" in dry_run("clean")


def test_the_checkov_lock_pins_the_input_with_hashes() -> None:
    wanted = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (ROOT / "requirements-checkov.in").read_text().splitlines()
        if line and not line.startswith("#")
    }
    pinned: dict[str, str] = {}
    hashed: set[str] = set()
    current = ""
    for line in (ROOT / "requirements-checkov.txt").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line):
            current = match[1].lower()
            pinned[current] = match[2]
        elif line.strip().startswith("--hash=sha256:"):
            hashed.add(current)
    assert wanted == {"checkov": "3.3.30"}
    assert {name: pinned.get(name) for name in wanted} == wanted
    assert len(pinned) > 50  # the whole tree, so --require-hashes can install it without resolving
    assert hashed == set(pinned)


@pytest.mark.slow
def test_the_fixes_deploy(sam: dict[str, Any]) -> None:
    """The SAM transform and moto's CloudFormation keep the encryption and the reservations.
    moto stores KmsMasterKeyId but encrypts nothing, calls no KMS and never checks that the alias
    exists; it also still reports SqsManagedSseEnabled=true beside it, where AWS turns SSE-SQS off
    once a KMS key is set. So this proves the properties reach the resources, not the crypto."""
    import boto3
    from moto import mock_aws

    from tools.stack import deploy

    with mock_aws():
        stack = deploy("checkov", {"RetryMaxConcurrency": "7"})
        sqs = boto3.client("sqs")
        for output in ("RetryQueueUrl", "RetryDLQUrl", "SpillQueueUrl", "SpillDLQUrl"):
            attributes = sqs.get_queue_attributes(
                QueueUrl=stack.outputs[output], AttributeNames=["All"]
            )["Attributes"]
            assert attributes["KmsMasterKeyId"] == "alias/aws/sqs", output
            assert attributes["KmsDataKeyReusePeriodSeconds"] == "3600", output
        lambda_ = boto3.client("lambda")
        reserved = {
            f: lambda_.get_function_concurrency(FunctionName=stack.physical_ids[f]).get(
                "ReservedConcurrentExecutions"
            )
            for f in functions_of(sam)
        }
        assert reserved == {
            "IngestFunction": None,
            "RetryFunction": 7,
            "SweepFunction": 1,
            "ReconcileFunction": 1,
            "SpillFunction": 2,
        }
