"""Deploy the real template.yaml into moto: the one harness behind integration tests, e2e tests and
the offline stack.

SAM → CloudFormation happens offline with aws-sam-translator (what `sam deploy` asks the SAM
transform to do); moto's CloudFormation then creates the tables, queues, functions (with their
environment resolved), layers and roles. Where moto and AWS differ, the difference is made here,
on a copy of the template, and said:

- aws-sam-translator refuses local CodeUri/ContentUri: they become placeholders in a local bucket.
- moto runs SQS event sources itself through Docker (absent here), and a message it hands to a
  failing container can vanish: SQS events are removed from the copy, and `sqs_event_sources`
  returns them so a caller can poll the queues as Lambda would.
- moto skips ApiGatewayV2, CloudWatch alarms and Scheduler resources with a warning; the template
  tests check those statically.
"""

from __future__ import annotations

import copy
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ARTIFACT_BUCKET = "redeliver-local-artifacts"
ARTIFACT_KEY = "placeholder.zip"
TEST_ACCOUNT_SID = "AC" + "0" * 32
# The documented test token: events/ are signed with it, and the offline stack's secret holds it.
TEST_AUTH_TOKEN = "redeliver-test-auth-token-not-a-secret"  # noqa: S105 - offline fixture


class _ManagedPolicies:
    """Resolves AWS managed policy names the way IAM would, without asking IAM."""

    def load(self) -> dict[str, str]:
        return _NamedArns()


class _NamedArns(dict[str, str]):
    def __missing__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/{name}"

    def get(self, name: str, default: Any = None) -> str:
        return self[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)


@dataclass(frozen=True)
class SqsEventSource:
    function: str  # logical id
    queue: str  # logical id of the queue
    batch_size: int = 10
    batching_window: int = 0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    result: dict[str, Any] = yaml_parse(path.read_text())
    return result


def sqs_event_sources(sam: dict[str, Any]) -> list[SqsEventSource]:
    """The SQS events the template gives its functions (resolved later against the stack)."""
    sources = []
    for name, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] != "SQS":
                continue
            props = event["Properties"]
            queue = props["Queue"]
            queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) else queue
            sources.append(
                SqsEventSource(
                    function=name,
                    queue=queue_id,
                    batch_size=_literal(props.get("BatchSize", 10), sam),
                    batching_window=_literal(props.get("MaximumBatchingWindowInSeconds", 0), sam),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (props.get("FunctionResponseTypes") or []),
                    maximum_concurrency=_literal(
                        (props.get("ScalingConfig") or {}).get("MaximumConcurrency"), sam
                    ),
                )
            )
    return sources


def _literal(value: Any, sam: dict[str, Any]) -> Any:
    """A literal, or a !Ref to a parameter resolved to its default."""
    if isinstance(value, dict) and "Ref" in value:
        return int(sam["Parameters"][value["Ref"]]["Default"])
    return value


def to_cloudformation(sam: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The CloudFormation moto can deploy: SAM transformed, with the changes above."""
    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
            events = props.get("Events") or {}
            for name in [n for n, e in events.items() if e["Type"] == "SQS"]:
                del events[name]
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result: dict[str, Any] = transform(sam, parameters, _ManagedPolicies())
    return result


@dataclass
class DeployedStack:
    name: str
    outputs: dict[str, str]
    physical_ids: dict[str, str]
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    sqs_sources: list[SqsEventSource] = field(default_factory=list)

    def environment(self, function: str) -> dict[str, str]:
        return self.environments[function]


def create_twilio_secret(
    name: str = "redeliver/twilio", auth_token: str = TEST_AUTH_TOKEN, **extra: Any
) -> str:
    secret = {"account_sid": TEST_ACCOUNT_SID, "auth_token": auth_token, **extra}
    answer = boto3.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps(secret)
    )
    return answer["ARN"]


def deploy(
    stack_name: str = "redeliver",
    parameters: dict[str, str] | None = None,
    template: Path = TEMPLATE,
) -> DeployedStack:
    """Deploy `template` into the moto reached by boto3 (mock_aws, or AWS_ENDPOINT_URL)."""
    parameters = dict(parameters or {})
    if "TwilioSecretArn" not in parameters:
        parameters["TwilioSecretArn"] = create_twilio_secret(f"{stack_name}/twilio")
    _upload_placeholder()
    sam = load_template(template)
    cfn_template = to_cloudformation(sam, parameters)
    cfn = boto3.client("cloudformation")
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(
            f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"
        )
    resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if r.get("PhysicalResourceId")
    }  # moto leaves skipped resources without one
    lambda_client = boto3.client("lambda")
    environments = {}
    for logical, resource in sam["Resources"].items():
        # A function whose Condition is false (ReconcileFunction when ReconcileAfterMinutes=0)
        # was not created: it has no environment.
        if resource["Type"] == "AWS::Serverless::Function" and logical in physical:
            config = lambda_client.get_function_configuration(FunctionName=physical[logical])
            environments[logical] = {
                # moto keeps resolved numbers as numbers; Lambda gives strings
                **{
                    k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()
                },
                "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config["MemorySize"]),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(config["Timeout"]),
            }
    return DeployedStack(
        name=stack_name,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        physical_ids=physical,
        environments=environments,
        sqs_sources=sqs_event_sources(sam),
    )


def _upload_placeholder() -> None:
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        return
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the working tree, not from this archive\n")
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=buffer.getvalue())
